"""Realistic answers of the three APIs (streamed and not), for the fake upstream."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

CALL_ARGUMENTS = "__fake_call_arguments"
"""Set by the fake upstream on a body to script a tool call's arguments."""
USAGE = {"input_tokens": 1234, "cached_tokens": 1000, "output_tokens": 7}


def sse(payload: dict[str, Any], name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _split(text: str, parts: int) -> list[str]:
    size = max(1, -(-len(text) // max(parts, 1)))
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    return pieces + [""] * (parts - len(pieces)) if len(pieces) < parts else pieces


def _wants_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool to call (its `name` is what matters): the first function tool when
    `tool_choice` asks for one ("required"; Anthropic: any or a named tool)."""
    choice = body.get("tool_choice")
    anthropic = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
    if choice != "required" and not anthropic:
        return None
    for tool in body.get("tools") or []:
        if anthropic and "input_schema" in tool:
            return dict(tool)
        if tool.get("type") == "function":
            found: dict[str, Any] = tool.get("function") or tool
            return found
    return None


def _arguments(body: dict[str, Any]) -> str:
    return str(body.get(CALL_ARGUMENTS, '{"city": "Paris"}'))


def _responses_usage() -> dict[str, Any]:
    return {
        "input_tokens": USAGE["input_tokens"],
        "input_tokens_details": {"cached_tokens": USAGE["cached_tokens"]},
        "output_tokens": USAGE["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": USAGE["input_tokens"] + USAGE["output_tokens"],
    }


def _response(rid: str, model: str, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
        "error": None,
        "incomplete_details": None,
    }


def _output_items(body: dict[str, Any], text: str) -> list[dict[str, Any]]:
    if (tool := _wants_tool(body)) is not None:
        return [
            {
                "id": _id("fc"),
                "type": "function_call",
                "status": "completed",
                "call_id": _id("call"),
                "name": tool.get("name"),
                "arguments": _arguments(body),
            }
        ]
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return [
        {
            "id": _id("msg"),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": content,
        }
    ]


def structured(body: dict[str, Any], text: str) -> str:
    """The answer's text: JSON that fits a requested `text.format` (as a model asked for
    structured output writes), else `text`."""
    shape = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if not isinstance(shape, dict):
        return text
    if shape.get("type") == "json_schema":
        return orjson.dumps(instance(shape.get("schema") or {})).decode()
    return "{}" if shape.get("type") == "json_object" else text


def instance(schema: Any) -> Any:
    """The smallest value a JSON schema accepts (its required properties, minimums, first
    enum value)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = str(kind[0] if isinstance(kind, list) else kind).lower()  # (Gemini's: "OBJECT")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: instance(properties.get(name)) for name in schema.get("required") or []}
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    return {"string": "", "boolean": False, "array": []}.get(kind)


def response_object(body: dict[str, Any], text: str) -> dict[str, Any]:
    return _response(
        _id("resp"),
        body.get("model", ""),
        "completed",
        _output_items(body, text),
        _responses_usage(),
    )


def responses_stream(
    body: dict[str, Any], text: str, deltas: int, *, completed_output: bool = True
) -> list[bytes]:
    """The Responses API event sequence. The Codex backend's HTTP stream
    (`completed_output=False`) sends the output items only as `response.output_item.done`: its
    `response.completed` carries `output: []`."""
    rid, model = _id("resp"), body.get("model", "")
    seq = iter(range(1_000_000))
    frames = [
        sse(
            {
                "type": "response.created",
                "response": _response(rid, model, "in_progress", [], None),
                "sequence_number": next(seq),
            },
            "response.created",
        ),
        sse(
            {
                "type": "response.in_progress",
                "response": _response(rid, model, "in_progress", [], None),
                "sequence_number": next(seq),
            },
            "response.in_progress",
        ),
    ]
    items = _output_items(body, text)
    item = items[0]
    if item["type"] == "function_call":
        added = {**item, "status": "in_progress", "arguments": ""}
        frames.append(
            sse(
                {
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "item": added,
                    "sequence_number": next(seq),
                },
                "response.output_item.added",
            )
        )
        for piece in _split(item["arguments"], deltas):
            frames.append(
                sse(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item["id"],
                        "output_index": 0,
                        "delta": piece,
                        "sequence_number": next(seq),
                    },
                    "response.function_call_arguments.delta",
                )
            )
        frames.append(
            sse(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": 0,
                    "arguments": item["arguments"],
                    "sequence_number": next(seq),
                },
                "response.function_call_arguments.done",
            )
        )
    else:
        mid = item["id"]
        frames.append(
            sse(
                {
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "item": {**item, "status": "in_progress", "content": []},
                    "sequence_number": next(seq),
                },
                "response.output_item.added",
            )
        )
        frames.append(
            sse(
                {
                    "type": "response.content_part.added",
                    "item_id": mid,
                    "output_index": 0,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []},
                    "sequence_number": next(seq),
                },
                "response.content_part.added",
            )
        )
        for piece in _split(text, deltas):
            frames.append(
                sse(
                    {
                        "type": "response.output_text.delta",
                        "item_id": mid,
                        "output_index": 0,
                        "content_index": 0,
                        "delta": piece,
                        "sequence_number": next(seq),
                    },
                    "response.output_text.delta",
                )
            )
        frames.append(
            sse(
                {
                    "type": "response.output_text.done",
                    "item_id": mid,
                    "output_index": 0,
                    "content_index": 0,
                    "text": text,
                    "sequence_number": next(seq),
                },
                "response.output_text.done",
            )
        )
        frames.append(
            sse(
                {
                    "type": "response.content_part.done",
                    "item_id": mid,
                    "output_index": 0,
                    "content_index": 0,
                    "part": item["content"][0],
                    "sequence_number": next(seq),
                },
                "response.content_part.done",
            )
        )
    frames.append(
        sse(
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": item,
                "sequence_number": next(seq),
            },
            "response.output_item.done",
        )
    )
    done = _response(rid, model, "completed", items if completed_output else [], _responses_usage())
    frames.append(
        sse(
            {"type": "response.completed", "response": done, "sequence_number": next(seq)},
            "response.completed",
        )
    )
    return frames


def _chat_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": USAGE["input_tokens"],
        "completion_tokens": USAGE["output_tokens"],
        "total_tokens": USAGE["input_tokens"] + USAGE["output_tokens"],
        "prompt_tokens_details": {"cached_tokens": USAGE["cached_tokens"]},
    }


def chat_completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "stop"
    if (tool := _wants_tool(body)) is not None:
        call = {
            "id": _id("call"),
            "type": "function",
            "function": {"name": tool.get("name"), "arguments": _arguments(body)},
        }
        message, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    return {
        "id": _id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _chat_usage(),
    }


def chat_stream(body: dict[str, Any], text: str, deltas: int) -> list[bytes]:
    cid, created, model = _id("chatcmpl"), int(time.time()), body.get("model", "")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    frames = [chunk({"role": "assistant", "content": ""})]
    if (tool := _wants_tool(body)) is not None:
        start = {"index": 0, "id": _id("call"), "type": "function"}
        start["function"] = {"name": tool.get("name"), "arguments": ""}
        frames.append(chunk({"tool_calls": [start]}))
        for piece in _split(_arguments(body), deltas):
            frames.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        frames.append(chunk({}, "tool_calls"))
    else:
        frames += [chunk({"content": piece}) for piece in _split(text, deltas)]
        frames.append(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        frames.append(
            sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _chat_usage(),
                }
            )
        )
    frames.append(b"data: [DONE]\n\n")
    return frames


def _anthropic_usage(output: int) -> dict[str, Any]:
    return {
        "input_tokens": USAGE["input_tokens"] - USAGE["cached_tokens"],
        "cache_read_input_tokens": USAGE["cached_tokens"],
        "cache_creation_input_tokens": 0,
        "output_tokens": output,
    }


def _anthropic_content(body: dict[str, Any], text: str) -> list[dict[str, Any]]:
    if (tool := _wants_tool(body)) is not None:
        call = {"type": "tool_use", "id": _id("toolu"), "name": tool.get("name")}
        return [{**call, "input": orjson.loads(_arguments(body))}]
    return [{"type": "text", "text": text}]


def anthropic_message(body: dict[str, Any], text: str) -> dict[str, Any]:
    content = _anthropic_content(body, text)
    return {
        "id": _id("msg"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": content,
        "stop_reason": "tool_use" if content[0]["type"] == "tool_use" else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(USAGE["output_tokens"]),
    }


def anthropic_stream(body: dict[str, Any], text: str, deltas: int) -> list[bytes]:
    whole = anthropic_message(body, text)
    message = {**whole, "content": [], "stop_reason": None, "usage": _anthropic_usage(1)}
    block = whole["content"][0]
    if block["type"] == "tool_use":
        start, pieces = {**block, "input": {}}, _split(_arguments(body), deltas)
        change = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    else:
        start = {"type": "text", "text": ""}
        change = [{"type": "text_delta", "text": piece} for piece in _split(text, deltas)]
    frames = [
        sse({"type": "message_start", "message": message}, "message_start"),
        sse(
            {"type": "content_block_start", "index": 0, "content_block": start},
            "content_block_start",
        ),
        sse({"type": "ping"}, "ping"),
    ]
    for delta in change:
        frames.append(
            sse(
                {"type": "content_block_delta", "index": 0, "delta": delta},
                "content_block_delta",
            )
        )
    frames.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    frames.append(
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": USAGE["output_tokens"]},
            },
            "message_delta",
        )
    )
    frames.append(sse({"type": "message_stop"}, "message_stop"))
    return frames


def codex_model(slug: str) -> dict[str, Any]:
    """One entry of the Codex backend's `/codex/models`, with every field the Codex CLI
    requires to parse it."""
    return {
        "slug": slug,
        "display_name": slug,
        "description": None,
        "default_reasoning_level": "medium",
        "supported_reasoning_levels": [],
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": True,
        "priority": 0,
        "upgrade": None,
        "base_instructions": "You are a coding agent.",
        "supports_reasoning_summaries": False,
        "support_verbosity": False,
        "default_verbosity": None,
        "apply_patch_tool_type": None,
        "truncation_policy": {"mode": "bytes", "limit": 10_000},
        "supports_parallel_tool_calls": False,
        "supports_image_detail_original": False,
        "context_window": 272_000,
        "max_context_window": 272_000,
        "experimental_supported_tools": [],
    }
