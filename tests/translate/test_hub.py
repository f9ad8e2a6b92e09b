"""The hub translations, pure: requests to chat and Messages upstreams, and their event streams
read back as Responses events and served in each client API — parallel tool calls, reasoning,
cached usage and stop reasons included."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from quotapool.domain.api import Api, Route
from quotapool.translate import TranslationError
from quotapool.translate.chat_responses import ChatStreamAdapter
from quotapool.translate.messages_responses import MessagesStreamAdapter
from quotapool.translate.responses_chat import ChatEvents, responses_to_chat
from quotapool.translate.responses_messages import MessagesEvents, responses_to_messages
from quotapool.translate.table import Bridged, translate

PARALLEL_TURN = [
    {"type": "message", "role": "developer", "content": "Use tools."},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "both?"}]},
    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "sealed"},
    {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"A"}'},
    {"type": "function_call", "call_id": "c2", "name": "weather", "arguments": '{"city":"B"}'},
    {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    {"type": "function_call_output", "call_id": "c2", "output": "rain"},
]


def test_parallel_calls_and_results_as_messages() -> None:
    body, dropped = responses_to_messages(
        {"model": "claude-x", "instructions": "Be brief.", "input": PARALLEL_TURN}
    )
    assert dropped == [] and body["system"] == "Be brief.\n\nUse tools."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    uses = body["messages"][1]["content"]
    assert [(u["type"], u["id"], u["input"]) for u in uses] == [
        ("tool_use", "c1", {"city": "A"}),
        ("tool_use", "c2", {"city": "B"}),
    ]
    results = body["messages"][2]["content"]
    assert [(r["tool_use_id"], r["content"]) for r in results] == [("c1", "sunny"), ("c2", "rain")]
    assert body["max_tokens"] == 32_000 and body["stream"] is True


def test_parallel_calls_and_results_as_chat() -> None:
    body, _ = responses_to_chat({"model": "m", "input": PARALLEL_TURN, "max_output_tokens": 50})
    messages = body["messages"]
    assert messages[0] == {"role": "system", "content": "Use tools."}
    assert messages[1] == {"role": "user", "content": "both?"}
    calls = messages[2]["tool_calls"]
    assert [c["id"] for c in calls] == ["c1", "c2"] and messages[2]["content"] is None
    assert messages[3:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]
    assert body["max_tokens"] == 50 and body["stream_options"] == {"include_usage": True}


def test_reasoning_effort_becomes_a_thinking_budget_without_temperature() -> None:
    body, _ = responses_to_messages(
        {"model": "c", "input": "hi", "reasoning": {"effort": "high"}, "temperature": 0.2}
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert body["max_tokens"] > 16384 and "temperature" not in body


def test_items_an_upstream_cannot_take_are_named() -> None:
    with pytest.raises(TranslationError) as info:
        responses_to_messages({"model": "c", "input": [{"type": "input_file", "file_id": "f"}]})
    assert info.value.param == "input[0].type"
    with pytest.raises(TranslationError) as refused:
        translate(Route.RESPONSES, Api.CHAT, {"model": "m", "previous_response_id": "x"})
    assert refused.value.param == "previous_response_id"
    lenient = translate(
        Route.CHAT,
        Api.MESSAGES,
        {"model": "c", "messages": [{"role": "user", "content": "h"}], "n": 2, "seed": 1},
        lenient=True,
    )
    assert lenient.dropped == ("n", "seed")


def anthropic_events() -> list[dict[str, Any]]:
    """Thinking, text, then two parallel tool uses, as Anthropic streams them."""
    usage = {"input_tokens": 34, "cache_read_input_tokens": 1000, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_1", "usage": usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hmm"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Checking"},
        },
        {"type": "content_block_stop", "index": 1},
    ]
    for index, city in ((2, "A"), (3, "B")):
        start = {"type": "tool_use", "id": f"t{index}", "name": "weather", "input": {}}
        events += [
            {"type": "content_block_start", "index": index, "content_block": start},
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
            },
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": f'"{city}"}}'},
            },
            {"type": "content_block_stop", "index": index},
        ]
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 42},
        },
        {"type": "message_stop"},
    ]
    return events


def chat_chunks() -> list[dict[str, Any]]:
    """Reasoning, text, then two parallel tool calls with interleaved arguments, then usage."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-9",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    calls = [
        {
            "index": 0,
            "id": "k0",
            "type": "function",
            "function": {"name": "weather", "arguments": ""},
        },
        {
            "index": 1,
            "id": "k1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"B"}'},
        },
    ]
    return [
        chunk({"role": "assistant", "reasoning_content": "hmm"}),
        chunk({"content": "Checking"}),
        chunk({"tool_calls": calls}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"A"}'}}]}),
        chunk({}, "tool_calls"),
        {
            "id": "chatcmpl-9",
            "choices": [],
            "usage": {
                "prompt_tokens": 1034,
                "completion_tokens": 42,
                "prompt_tokens_details": {"cached_tokens": 1000},
            },
        },
    ]


def _sse(raw: bytes) -> list[dict[str, Any]]:
    return [
        orjson.loads(line.removeprefix(b"data: "))
        for line in raw.split(b"\n")
        if line.startswith(b"data: ") and line != b"data: [DONE]"
    ]


@pytest.mark.parametrize("upstream", ["anthropic", "chat"])
def test_a_parallel_tool_turn_reaches_a_chat_client(upstream: str) -> None:
    events: Any = MessagesEvents() if upstream == "anthropic" else ChatEvents()
    source = anthropic_events() if upstream == "anthropic" else chat_chunks()
    client = ChatStreamAdapter("model", include_usage=True, created=1)
    adapter = Bridged(events, client)
    stream = b"".join(adapter.feed(e) for e in source) + adapter.tail
    chunks = _sse(stream)
    assert stream.endswith(b"data: [DONE]\n\n")
    arguments: dict[int, str] = {}
    for chunk in chunks:
        for call in (
            (chunk["choices"][0]["delta"].get("tool_calls") or []) if chunk["choices"] else []
        ):
            arguments[call["index"]] = (
                arguments.get(call["index"], "") + call["function"]["arguments"]
            )
    assert {i: orjson.loads(a) for i, a in arguments.items()} == {
        0: {"city": "A"},
        1: {"city": "B"},
    }
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 1000
    assert (
        chunks[-1]["usage"]["prompt_tokens"] == 1034
        and chunks[-1]["usage"]["completion_tokens"] == 42
    )


@pytest.mark.parametrize("upstream", ["anthropic", "chat"])
def test_a_parallel_tool_turn_reaches_a_messages_client(upstream: str) -> None:
    events: Any = MessagesEvents() if upstream == "anthropic" else ChatEvents()
    source = anthropic_events() if upstream == "anthropic" else chat_chunks()
    adapter = Bridged(events, MessagesStreamAdapter("claude-x", thinking=True))
    for event in source:
        adapter.feed(event)
    assert adapter.finished
    message = adapter.completion()
    kinds = [b["type"] for b in message["content"]]
    assert kinds == ["thinking", "text", "tool_use", "tool_use"]
    assert (
        message["content"][0]["thinking"] == "hmm" and message["content"][1]["text"] == "Checking"
    )
    assert [b["input"] for b in message["content"][2:]] == [{"city": "A"}, {"city": "B"}]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["cache_read_input_tokens"] == 1000
    assert message["usage"]["input_tokens"] == 34 and message["usage"]["output_tokens"] == 42


def test_an_output_cap_reached_is_a_length_stop() -> None:
    source = anthropic_events()[:7] + [
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    chat = Bridged(MessagesEvents(), ChatStreamAdapter("m", include_usage=False, created=1))
    for event in source:
        chat.feed(event)
    assert chat.completion()["choices"][0]["finish_reason"] == "length"
    chunks = chat_chunks()[:2] + [
        {"id": "chatcmpl-9", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    ]
    messages = Bridged(ChatEvents(), MessagesStreamAdapter("c"))
    for chunk in chunks:
        messages.feed(chunk)
    assert messages.completion()["stop_reason"] == "max_tokens"  # no usage chunk: ends at the end
