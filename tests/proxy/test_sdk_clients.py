"""The official SDKs, unmodified, against quotapool in front of the fake upstream."""

from __future__ import annotations

import json

from quotapool.control.catalogue import CLAUDE_NAMES
from quotapool.testing.fake_model import Failure, server_error
from tests.conftest import Harness


def test_responses_non_stream_on_codex_account(h: Harness) -> None:
    client = h.openai()
    response = client.responses.create(model="gpt-5.5", input="hello")
    assert response.output_text.startswith("Hi from ")
    assert response.usage is not None and response.usage.input_tokens == 1234
    seen = h.fake.seen[-1]
    assert seen.path == "/backend-api/codex/responses"
    assert seen.body["stream"] is True and seen.body["store"] is False
    assert seen.headers["authorization"] != "Bearer client-key"
    assert seen.headers["chatgpt-account-id"].startswith("acct-")


def test_responses_stream_relays_every_event(h: Harness) -> None:
    client = h.openai()
    with client.responses.stream(model="gpt-5.5", input="hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 5
    assert final.output_text.startswith("Hi from ")


def test_chat_on_codex_is_translated_non_stream(h: Harness) -> None:
    client = h.openai()
    completion = client.chat.completions.create(
        model="gpt-5.5",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("Hi from ")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 1234
    sent = h.fake.seen[-1].body
    assert sent["instructions"] == "be brief"
    assert sent["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]


def test_chat_on_codex_is_translated_stream_with_usage(h: Harness) -> None:
    client = h.openai()
    stream = client.chat.completions.create(
        model="gpt-5.5",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hi from ")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


def test_chat_tool_call_translated(h: Harness) -> None:
    client = h.openai()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages = [{"role": "user", "content": "weather?"}]
    completion = client.chat.completions.create(
        model="gpt-5.5",
        messages=messages,
        tools=tools,
        tool_choice="required",  # type: ignore[arg-type]
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    stream = client.chat.completions.create(
        model="gpt-5.5",
        messages=messages,
        tools=tools,
        tool_choice="required",
        stream=True,  # type: ignore[arg-type]
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""  # type: ignore[index, union-attr]
        for c in stream
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"city": "Paris"}


def test_chat_passthrough_to_openai_key(h: Harness) -> None:
    client = h.openai()
    completion = client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "Hi from openai-key!"
    assert h.fake.seen[-1].path == "/v1/chat/completions"
    assert h.fake.seen[-1].headers["authorization"] == "Bearer sk-openai"
    stream = client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        == "Hi from openai-key!"
    )


def test_responses_passthrough_to_openai_key(h: Harness) -> None:
    client = h.openai()
    assert client.responses.create(model="gpt-4.1", input="hi").output_text == "Hi from openai-key!"
    with client.responses.stream(model="gpt-4.1", input="hi") as stream:
        assert stream.get_final_response().output_text == "Hi from openai-key!"
    assert h.fake.seen[-1].path == "/v1/responses"


def test_anthropic_messages(h: Harness) -> None:
    client = h.anthropic()
    message = client.messages.create(
        model="claude-fake-1", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Hi from anthropic-key!"  # type: ignore[union-attr]
    seen = h.fake.seen[-1]
    assert seen.headers["x-api-key"] == "sk-ant"
    assert seen.headers["anthropic-version"]  # the client's own version is forwarded
    with client.messages.stream(
        model="claude-fake-1", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "Hi from anthropic-key!"
        assert stream.get_final_message().usage.output_tokens == 7


def test_models_lists_the_union(h: Harness) -> None:
    ids = {m.id for m in h.openai().models.list()}
    assert ids == {"gpt-5.5", "gpt-4.1", *CLAUDE_NAMES}  # (the Anthropic key lists none)
    with h.http() as http:
        catalogue = http.get("/backend-api/codex/models").json()  # an account's, as it came
        assert [m["slug"] for m in catalogue["models"]][:2] == ["gpt-5.5", "gpt-5.4"]
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").status_code == 200


def test_every_response_has_request_id_and_route(h: Harness) -> None:
    with h.http() as http:
        response = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "x"})
        assert response.headers["x-quotapool-request-id"].startswith("qp-")
        assert response.headers["x-quotapool-route"].startswith("round_robin; credential=")
        bad = http.post("/v1/responses", content=b"{")
        assert bad.headers["x-quotapool-request-id"].startswith("qp-")


def test_every_answer_has_exactly_one_content_type(h: Harness) -> None:
    chat = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
    with h.http() as http:
        relayed = http.post("/v1/chat/completions", json=chat)  # an OpenAI key's JSON, as is
        streamed = http.post("/v1/chat/completions", json={**chat, "stream": True})
        translated = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"})
        h.fake.account("sk-openai").fail_next(Failure(400, {"error": {"message": "no"}}))
        refused = http.post("/v1/chat/completions", json=chat)  # the upstream's own 400
        h.fake.account("sk-openai").fail_next(server_error(503))
        backing_off = http.post("/v1/chat/completions", json=chat)  # quotapool's own 503
    assert relayed.headers.get_list("content-type") == ["application/json; charset=utf-8"]
    assert streamed.headers.get_list("content-type") == ["text/event-stream; charset=utf-8"]
    assert translated.headers.get_list("content-type") == ["application/json"]
    assert refused.status_code == 400
    assert refused.headers.get_list("content-type") == ["application/json"]  # the upstream's
    assert backing_off.status_code == 503  # an outage, not a usage limit
    assert backing_off.headers.get_list("content-type") == ["application/json"]


def test_chat_stream_tokens_are_logged_without_changing_what_the_client_sees(h: Harness) -> None:
    client = h.openai()
    chunks = list(
        client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.choices and c.usage is None for c in chunks)  # no usage chunk it did not ask for
    assert h.fake.seen[-1].body["stream_options"] == {"include_usage": True}
    row = h.rows(1)[0]
    assert row["input_tokens"] == 1234 and row["output_tokens"] == 7
    asked = list(
        client.chat.completions.create(
            model="gpt-4.1",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert asked[-1].usage is not None and asked[-1].usage.completion_tokens == 7


def test_anthropic_count_tokens_passes_through(h: Harness) -> None:
    """Claude Code calls it on its own; the SDK's `count_tokens` must work through the pool."""
    counted = h.anthropic().messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello there"}]
    )
    assert counted.input_tokens > 0
    seen = h.fake.seen[-1]
    assert seen.path == "/v1/messages/count_tokens" and seen.headers["x-api-key"] == "sk-ant"
    assert h.rows(1)[-1]["route"] == "count_tokens"


def test_beta_query_reaches_anthropic_and_streams_have_one_cache_control(h: Harness) -> None:
    body = {
        "model": "claude-fake-1",
        "max_tokens": 9,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with h.http() as http:
        streamed = http.post("/v1/messages?beta=true", json=body)  # as Claude Code sends it
        assert h.fake.seen[-1].path == "/v1/messages" and h.fake.seen[-1].query == "beta=true"
        http.post("/v1/messages?api_key=sk-client-secret&beta=true&x=1", json=body)
        assert h.fake.seen[-1].query == "beta=true"  # nothing else of the client's reaches it
        translated = http.post(
            "/v1/responses", json={"model": "gpt-5.5", "input": "hi", "stream": True}
        )
    for response in (streamed, translated):
        assert response.headers.get_list("cache-control") == ["no-cache"]
        assert len(response.headers.get_list("content-type")) == 1
