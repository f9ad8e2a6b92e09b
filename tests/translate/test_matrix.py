"""The translation matrix through the real server, with the official SDKs against the strict
fake upstreams: chat and Responses clients on Anthropic keys, Messages and Responses clients on
chat-only OpenAI-compatible keys, Messages on an OpenAI Responses key."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from quotapool.testing.fake_upstream import FakeUpstream, rate_limited, server_error
from tests.conftest import Harness, HarnessFactory

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _second_keys(fake: FakeUpstream, _url: str) -> None:
    fake.add("sk-ant-2", name="anthropic-key-2")
    fake.add("sk-chat-2", name="chat-key-2")


@pytest.fixture
def claude(harness: HarnessFactory) -> Harness:
    """Two Anthropic keys, nothing else."""
    return harness(
        credentials=[
            {"kind": "anthropic", "name": "ant-1", "api_key": "sk-ant"},
            {"kind": "anthropic", "name": "ant-2", "api_key": "sk-ant-2"},
        ],
        before_start=_second_keys,
        routing={"strategy": "sequential"},
    )


@pytest.fixture
def chat_only(harness: HarnessFactory) -> Harness:
    """Two OpenAI-compatible keys whose servers have only the chat API (as vLLM, Ollama)."""
    return harness(
        credentials=[
            {"kind": "openai", "name": "vllm-1", "api_key": "sk-openai", "apis": ["chat"]},
            {"kind": "openai", "name": "vllm-2", "api_key": "sk-chat-2", "apis": ["chat"]},
        ],
        before_start=_second_keys,
        routing={"strategy": "sequential"},
    )


def _seen(h: Harness, path: str) -> dict[str, Any]:
    bodies = [s.body for s in h.fake.seen if s.path == path]
    assert bodies, f"nothing reached {path}"
    return bodies[-1]


# --- chat clients on Anthropic keys ---------------------------------------------------------


def test_chat_on_anthropic_keys_text_system_and_parameters(claude: Harness) -> None:
    client = claude.openai()
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}
    answer = client.chat.completions.create(
        model="claude-sonnet-5-5",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]},
        ],
        temperature=0.3,
        max_tokens=500,
        stop=["\n\n"],
    )
    assert answer.object == "chat.completion" and answer.model == "claude-sonnet-5-5"
    assert answer.choices[0].message.content.startswith("Hi from ")  # type: ignore[union-attr]
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.prompt_tokens == 1234
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 1000
    sent = _seen(claude, "/v1/messages")
    assert sent["system"] == "Be brief." and sent["stream"] is True
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 500
    assert sent["stop_sequences"] == ["\n\n"]
    blocks = sent["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }
    row = claude.rows(1)[-1]
    assert row["credential"] == "ant-1" and row["status"] == 200 and row["input_tokens"] == 1234


def test_chat_stream_on_anthropic_keys_with_usage(claude: Harness) -> None:
    client = claude.openai()
    chunks = list(
        client.chat.completions.create(
            model="claude-haiku-5-5",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hi from ")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


def test_chat_tool_round_trip_on_anthropic_keys(claude: Harness) -> None:
    claude.fake.account("sk-ant").tool_call = ("weather", '{"city": "Oslo"}')
    client = claude.openai()
    first = client.chat.completions.create(
        model="claude-sonnet-5-5",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "weather" and orjson.loads(call.function.arguments) == {  # type: ignore[union-attr]
        "city": "Oslo"
    }
    second = client.chat.completions.create(
        model="claude-sonnet-5-5",
        messages=[
            {"role": "user", "content": "weather in Oslo?"},
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
        parallel_tool_calls=False,
    )
    assert second.choices[0].message.content.startswith("Hi from ")  # type: ignore[union-attr]
    sent = _seen(claude, "/v1/messages")  # the strict fake checked the tool result's pairing
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call.id,
        "content": "sunny",
    }
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
    assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_what_anthropic_keys_cannot_do_for_chat_is_a_clear_400(claude: Harness) -> None:
    client = claude.openai()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="claude-sonnet-5-5", messages=[{"role": "user", "content": "hi"}], n=2
        )
    error = info.value.body
    assert isinstance(error, dict) and error["param"] == "n"
    assert "Anthropic keys" in error["message"]
    with pytest.raises(openai.NotFoundError):  # an Anthropic key does not serve GPT models
        client.chat.completions.create(
            model="gpt-5.5", messages=[{"role": "user", "content": "hi"}]
        )
    assert not [s for s in claude.fake.seen if s.path == "/v1/messages"]


def test_a_429_on_the_first_anthropic_key_is_invisible_to_a_chat_client(claude: Harness) -> None:
    claude.fake.account("sk-ant").fail_next(rate_limited(30))
    client = claude.openai()
    answer = client.chat.completions.create(
        model="claude-sonnet-5-5", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content.startswith("Hi from anthropic-key-2")  # type: ignore[union-attr]
    row = claude.rows(1)[-1]
    assert row["credential"] == "ant-2" and row["attempts"] == 2


def test_anthropic_errors_reach_a_chat_client_in_its_shape(claude: Harness) -> None:
    for token in ("sk-ant", "sk-ant-2"):
        claude.fake.account(token).fail_next(*[server_error(529)] * 3)
    with claude.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code >= 500
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str)


# --- Responses clients on Anthropic keys ----------------------------------------------------


def test_responses_on_anthropic_keys_stream_and_not(claude: Harness) -> None:
    client = claude.openai()
    answer = client.responses.create(
        model="claude-sonnet-5-5", instructions="Be brief.", input="hi", max_output_tokens=300
    )
    assert answer.status == "completed" and answer.output_text.startswith("Hi from ")
    assert answer.usage is not None and answer.usage.input_tokens == 1234
    sent = _seen(claude, "/v1/messages")
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 300
    with client.responses.stream(model="claude-sonnet-5-5", input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds
    assert final.output_text.startswith("Hi from ")


def test_responses_tool_turn_on_anthropic_keys_continues_by_id(claude: Harness) -> None:
    claude.fake.account("sk-ant").tool_call = ("weather", '{"city": "Oslo"}')
    client = claude.openai()
    tool = {"type": "function", **WEATHER["function"]}  # type: ignore[dict-item]
    first = client.responses.create(
        model="claude-sonnet-5-5",
        input="weather in Oslo?",
        tools=[tool, {"type": "web_search"}],  # type: ignore[list-item]
    )
    call = first.output[0]
    assert call.type == "function_call" and call.name == "weather"
    assert orjson.loads(call.arguments) == {"city": "Oslo"}
    second = client.responses.with_raw_response.create(
        model="claude-sonnet-5-5",
        previous_response_id=first.id,  # kept by quotapool: Anthropic has no stored responses
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[tool, {"type": "web_search"}],  # type: ignore[list-item]
    )
    assert second.headers["x-quotapool-dropped"] == "tools[1] (web_search)"
    assert second.parse().output_text.startswith("Hi from ")
    sent = _seen(claude, "/v1/messages")
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][2]["content"][0]["tool_use_id"] == call.call_id
    assert [t["name"] for t in sent["tools"]] == ["weather"]


def test_the_codex_clis_custom_tool_comes_back_as_a_custom_call(claude: Harness) -> None:
    claude.fake.account("sk-ant").tool_call = ("apply_patch", '{"input": "*** Begin Patch"}')
    patch = {
        "type": "custom",
        "name": "apply_patch",
        "description": "Apply a patch",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
    }
    with claude.http() as http:
        response = http.post(
            "/v1/responses",
            json={"model": "claude-sonnet-5-5", "input": "patch it", "tools": [patch]},
        )
    assert response.status_code == 200, response.text
    item = response.json()["output"][0]
    assert item["type"] == "custom_tool_call" and item["input"] == "*** Begin Patch"
    sent = _seen(claude, "/v1/messages")
    assert sent["tools"][0]["input_schema"]["required"] == ["input"]
    assert "start: /.+/" in sent["tools"][0]["description"]


# --- Messages clients on chat-only OpenAI-compatible keys -----------------------------------


def test_messages_on_a_chat_only_key_text_and_stream(chat_only: Harness) -> None:
    client = chat_only.anthropic()
    message = client.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=900,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"temperature": 0.5, "stop_sequences": ["END"]},
    )
    assert message.content[0].type == "text" and message.content[0].text.startswith("Hi from ")
    assert message.stop_reason == "end_turn" and message.model == "claude-sonnet-5-5"
    assert message.usage.cache_read_input_tokens == 1000 and message.usage.input_tokens == 234
    sent = _seen(chat_only, "/v1/chat/completions")
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 900 and sent["temperature"] == 0.5 and sent["stop"] == ["END"]
    assert sent["stream_options"] == {"include_usage": True}
    with client.messages.stream(
        model="claude-sonnet-5-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Hi from ") and final.usage.output_tokens == 7
    assert not [s for s in chat_only.fake.seen if s.path == "/v1/responses"]


def test_messages_tool_round_trip_on_a_chat_only_key(chat_only: Harness) -> None:
    chat_only.fake.account("sk-openai").tool_call = ("Bash", '{"command": "ls"}')
    client = chat_only.anthropic()
    first = client.messages.create(
        model="claude-opus-5-5",
        max_tokens=1000,
        tools=[BASH],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "list files"}],
    )
    use = first.content[0]
    assert first.stop_reason == "tool_use" and use.type == "tool_use"
    assert use.name == "Bash" and use.input == {"command": "ls"}
    second = client.messages.create(
        model="claude-opus-5-5",
        max_tokens=1000,
        tools=[BASH],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "list files"},
            {"role": "assistant", "content": [use.model_dump()]},  # type: ignore[list-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "a.txt"}],
            },
        ],
    )
    assert second.content[0].type == "text"
    sent = _seen(chat_only, "/v1/chat/completions")  # the strict fake checked the pairing
    assert sent["messages"][1]["tool_calls"][0]["id"] == use.id
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": use.id, "content": "a.txt"}


def test_what_chat_only_keys_cannot_do_for_messages_is_a_clear_400(chat_only: Harness) -> None:
    client = chat_only.anthropic()
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"top_k": 5},
        )
    assert "top_k" in str(info.value) and 'apis = ["chat"]' in str(info.value)
    with chat_only.http() as http:
        compact = http.post("/v1/responses/compact", json={"model": "m", "input": "hi"})
    assert compact.status_code == 404 and "compact API" in compact.text


def test_responses_on_a_chat_only_key_with_a_tool_call(chat_only: Harness) -> None:
    chat_only.fake.account("sk-openai").tool_call = ("weather", '{"city": "Rome"}')
    client = chat_only.openai()
    tool = {"type": "function", **WEATHER["function"]}  # type: ignore[dict-item]
    with client.responses.stream(
        model="qwen3-coder",
        input="weather?",
        tools=[tool],  # type: ignore[list-item]
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == '{"city": "Rome"}'
    assert final.output[0].type == "function_call" and final.usage is not None
    text = client.responses.create(model="qwen3-coder", input="hi")
    assert text.output_text.startswith("Hi from ")
    sent = _seen(chat_only, "/v1/chat/completions")
    assert sent["messages"] == [{"role": "user", "content": "hi"}]


def test_a_429_on_a_chat_only_key_is_invisible_to_a_messages_client(chat_only: Harness) -> None:
    chat_only.fake.account("sk-openai").fail_next(rate_limited(30))
    message = chat_only.anthropic().messages.create(
        model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text.startswith("Hi from chat-key-2")  # type: ignore[union-attr]


# --- Messages clients on an OpenAI key with the Responses API --------------------------------


def test_messages_on_an_openai_responses_key_carries_the_output_cap(
    harness: HarnessFactory,
) -> None:
    h = harness(credentials=[{"kind": "openai", "name": "oai", "api_key": "sk-openai"}])
    message = h.anthropic().messages.create(
        model="claude-sonnet-5-5",
        max_tokens=321,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-claude-code-session-id": "sess-1"},
    )
    assert message.content[0].text.startswith("Hi from ")  # type: ignore[union-attr]
    sent = _seen(h, "/v1/responses")
    assert sent["max_output_tokens"] == 321 and sent["prompt_cache_key"] == "sess-1"
    with httpx.Client(base_url=h.base) as http:
        refused = http.post(
            "/v1/messages",
            json={
                "model": "claude-sonnet-5-5",
                "max_tokens": 10,
                "stop_sequences": ["x"],
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert refused.status_code == 400 and refused.json()["type"] == "error"
    assert "stop_sequences" in refused.json()["error"]["message"]


def test_claude_models_are_routed_and_sent_by_their_stand_in(harness: HarnessFactory) -> None:
    """Model lists are checked against the model served in a Claude model's place, and a
    credential's model_map applies to that."""
    h = harness(
        credentials=[
            {
                "kind": "codex",
                "name": "alpha",
                "api_key": "tok-a",
                "account_id": "acct-a",
                "models": ["gpt-5.5"],
            },
            {
                "kind": "openai",
                "name": "vllm",
                "api_key": "sk-openai",
                "apis": ["chat"],
                "models": ["gpt-5.4-mini"],
                "model_map": {"gpt-5.4-mini": "qwen3-small"},
            },
        ]
    )
    client = h.anthropic()
    for model, path, sent in (
        ("claude-sonnet-5-5", "/backend-api/codex/responses", "gpt-5.5"),
        ("claude-haiku-5-5", "/v1/chat/completions", "qwen3-small"),
    ):
        client.messages.create(
            model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert (h.fake.seen[-1].path, h.fake.seen[-1].model) == (path, sent)
        row = h.rows(len(h.fake.seen))[-1]
        assert row["model"] == model and row["sent_model"] == sent


def test_chat_on_a_key_with_only_the_responses_api(harness: HarnessFactory) -> None:
    h = harness(
        credentials=[
            {"kind": "openai", "name": "oai", "api_key": "sk-openai", "apis": ["responses"]}
        ]
    )
    h.fake.account("sk-openai").tool_call = ("weather", '{"city": "Lima"}')
    client = h.openai()
    answer = client.chat.completions.create(
        model="gpt-5.5",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        tools=[WEATHER],  # type: ignore[list-item]
        max_tokens=77,
        temperature=0.1,
    )
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather" and answer.choices[0].finish_reason == "tool_calls"  # type: ignore[union-attr]
    sent = _seen(h, "/v1/responses")
    assert sent["instructions"] == "Be brief." and sent["max_output_tokens"] == 77
    assert sent["temperature"] == 0.1 and "stop" not in sent
    assert not [s for s in h.fake.seen if s.path == "/v1/chat/completions"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-5.5", messages=[{"role": "user", "content": "hi"}], stop=["x"]
        )
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "stop"


# --- the Gemini API on both sides --------------------------------------------------------

GEMINI_UPSTREAMS: dict[str, tuple[dict[str, Any], str]] = {
    "codex": (
        {"kind": "codex", "name": "alpha", "api_key": "tok-a", "account_id": "acct-a"},
        "/backend-api/codex/responses",
    ),
    "responses": ({"kind": "openai", "name": "oai", "api_key": "sk-openai"}, "/v1/responses"),
    "chat": (
        {"kind": "openai", "name": "vllm", "api_key": "sk-openai", "apis": ["chat"]},
        "/v1/chat/completions",
    ),
    "anthropic": ({"kind": "anthropic", "name": "ant", "api_key": "sk-ant"}, "/v1/messages"),
    "gemini": (
        {"kind": "gemini", "name": "gem", "api_key": "gk-1"},
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
    ),
}


def _gemini_key(fake: FakeUpstream, _url: str) -> None:
    fake.add("gk-1", name="gemini-key")


@pytest.mark.parametrize("upstream", sorted(GEMINI_UPSTREAMS))
def test_gemini_clients_on_every_upstream(harness: HarnessFactory, upstream: str) -> None:
    """The google-genai SDK: a streamed answer and a function call turn, on each kind of
    credential (on Anthropic keys a Claude model is asked for: its keys serve only those)."""
    from google import genai
    from google.genai import types

    credential, path = GEMINI_UPSTREAMS[upstream]
    h = harness(credentials=[credential], before_start=_gemini_key)
    model = "claude-sonnet-5-5" if upstream == "anthropic" else "gemini-2.5-pro"
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=h.base))
    chunks = list(client.models.generate_content_stream(model=model, contents="hi"))
    assert "".join(c.text or "" for c in chunks).startswith("Hi from ")
    assert h.fake.seen[-1].path == path
    token = credential["api_key"]
    h.fake.account(token).tool_call = ("weather", '{"city": "Lima"}')
    declaration = types.FunctionDeclaration(
        name="weather",
        parameters_json_schema=WEATHER["function"]["parameters"],  # type: ignore[index]
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    answer = client.models.generate_content(model=model, contents="weather?", config=config)
    assert [(c.name, c.args) for c in answer.function_calls or []] == [
        ("weather", {"city": "Lima"})
    ]
    assert h.rows(2)[-1]["route"] == "gemini"


@pytest.mark.parametrize("client_api", ["responses", "chat", "messages"])
def test_every_client_api_on_a_gemini_key(harness: HarnessFactory, client_api: str) -> None:
    h = harness(
        credentials=[{"kind": "gemini", "name": "gem", "api_key": "gk-1"}],
        before_start=_gemini_key,
    )
    model, said = "gemini-2.5-flash", "hi"
    if client_api == "responses":
        text = h.openai().responses.create(model=model, input=said, stream=False).output_text
    elif client_api == "chat":
        chunks = h.openai().chat.completions.create(
            model=model, messages=[{"role": "user", "content": said}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        message = h.anthropic().messages.create(
            model=model, max_tokens=50, messages=[{"role": "user", "content": said}]
        )
        text = message.content[0].text  # type: ignore[union-attr]
    assert text == "Hi from gemini-key!"
    seen = h.fake.seen[-1]
    assert seen.path == f"/v1beta/models/{model}:streamGenerateContent" and seen.query == "alt=sse"
    assert seen.body["contents"] == [{"role": "user", "parts": [{"text": said}]}]
    row = h.rows(1)[-1]
    assert (row["input_tokens"], row["output_tokens"]) == (7, 5)
