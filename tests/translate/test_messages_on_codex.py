"""Anthropic Messages clients on a pool of Codex (ChatGPT) accounts, through the real server,
with the official Anthropic SDK against the strict fake Codex backend."""

from __future__ import annotations

import time

import anthropic
import pytest

from quotapool.testing.fake_upstream import usage_limit
from tests.conftest import Harness, HarnessFactory

BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    """Three Codex accounts, nothing else."""
    return harness(routing={"strategy": "sequential"})


def test_a_text_turn_is_answered_in_anthropic_shape(h: Harness) -> None:
    client = h.anthropic()
    message = client.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=8000,
        system=[
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.abc;"},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        messages=[{"role": "user", "content": "hi"}],
        metadata={"user_id": "someone"},
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text.startswith("Hi from ")
    assert message.stop_reason == "end_turn" and message.model == "claude-sonnet-5-5"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    seen = h.fake.seen[-1]
    assert seen.path == "/backend-api/codex/responses" and seen.model == "gpt-5.5"
    assert seen.body["instructions"] == "Be brief."  # the billing stamp is not a prompt
    assert seen.body["stream"] is True and seen.body["store"] is False
    assert "max_output_tokens" not in seen.body and "metadata" not in seen.body
    row = h.rows(1)[-1]
    assert row["model"] == "claude-sonnet-5-5" and row["sent_model"] == "gpt-5.5"


def test_streaming_text_arrives_as_anthropic_events(h: Harness) -> None:
    client = h.anthropic()
    with client.messages.stream(
        model="claude-opus-5-5", max_tokens=1000, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Hi from ") and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_a_tool_round_trip_with_claude_code_shapes(h: Harness) -> None:
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).tool_call = ("Bash", '{"command": "echo hi"}')
    client = h.anthropic()
    first = client.messages.create(
        model="claude-opus-5-5",
        max_tokens=8000,
        tools=[BASH],
        extra_body={  # as Claude Code sends them
            "thinking": {"type": "adaptive", "display": "omitted"},
            "output_config": {"effort": "medium"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        },
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "run echo hi"}]},
            {"role": "system", "content": "Environment: linux"},
        ],
        extra_headers={"x-claude-code-session-id": "session-1"},
    )
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "Bash" and call.input == {"command": "echo hi"}
    sent = h.fake.seen[-1].body
    assert sent["reasoning"] == {"effort": "medium"}
    assert sent["prompt_cache_key"] == "session-1"
    assert sent["tools"][0]["parameters"]["properties"] == {"command": {"type": "string"}}
    assert "$schema" not in sent["tools"][0]["parameters"]
    assert sent["input"][1] == {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "Environment: linux"}],
    }
    account = h.fake.seen[-1].account
    second = client.messages.create(
        model="claude-opus-5-5",
        max_tokens=8000,
        tools=[BASH],
        messages=[
            {"role": "user", "content": "run echo hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": call.id, "name": "Bash", "input": call.input}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": "hi\n",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
        ],
        extra_headers={"x-claude-code-session-id": "session-1"},
    )
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    body = h.fake.seen[-1].body
    assert body["input"][1] == {
        "type": "function_call",
        "call_id": call.id,
        "name": "Bash",
        "arguments": '{"command":"echo hi"}',
    }
    assert body["input"][2] == {
        "type": "function_call_output",
        "call_id": call.id,
        "output": "hi\n",
    }
    assert h.fake.seen[-1].account == account  # the session stays on its account


def test_a_usage_limit_on_the_first_account_is_invisible(h: Harness) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 900))
    h.fake.account("tok-b").fail_next(usage_limit(time.time() + 900))
    h.fake.account("tok-c").fail_next(usage_limit(time.time() + 900))
    h.fake.account("tok-a").failures.clear()
    client = h.anthropic()
    message = client.messages.create(
        model="claude-haiku-5-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Hi from alpha!"
    assert h.fake.seen[-1].model == "gpt-5.4-mini"


def test_what_codex_accounts_cannot_do_is_a_clear_400(h: Harness) -> None:
    client = h.anthropic()
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"temperature": 0.2},
        )
    assert raised.value.body["type"] == "error"  # type: ignore[index]
    assert "temperature" in raised.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as document:
        client.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=100,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                        }
                    ],
                }
            ],  # type: ignore[list-item]
        )
    assert "document" in str(document.value)


def test_count_tokens_is_estimated_locally_without_an_anthropic_key(h: Harness) -> None:
    client = h.anthropic()
    short = client.messages.count_tokens(
        model="claude-sonnet-5-5", messages=[{"role": "user", "content": "hi"}]
    )
    long = client.messages.count_tokens(
        model="claude-sonnet-5-5", messages=[{"role": "user", "content": "word " * 4000}]
    )
    assert 0 < short.input_tokens < 50 and 3000 < long.input_tokens < 8000
    assert not any(s.path.endswith("count_tokens") for s in h.fake.seen)


def test_chat_parameters_codex_cannot_honour_are_named_or_dropped_when_lenient(
    harness: HarnessFactory,
) -> None:
    import openai

    strict = harness()
    client = strict.openai()
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="gpt-5.5", temperature=0.2, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body["param"] == "temperature"  # type: ignore[index]
    assert "lenient" in raised.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as capped:
        client.responses.create(model="gpt-5.5", input="hi", max_output_tokens=100)
    assert capped.value.body["param"] == "max_output_tokens"  # type: ignore[index]
    lenient = harness(lenient=True).openai()
    answer = lenient.chat.completions.with_raw_response.create(
        model="gpt-5.5",
        temperature=0.2,
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert answer.headers["x-quotapool-dropped"] == "temperature, max_tokens"
    assert answer.parse().choices[0].message.content.startswith("Hi from ")
    responses = lenient.responses.with_raw_response.create(
        model="gpt-5.5", input="hi", max_output_tokens=100
    )
    assert responses.headers["x-quotapool-dropped"] == "max_output_tokens"
    assert responses.parse().output_text.startswith("Hi from ")
    messages = harness(lenient=True).anthropic()
    dropped = messages.messages.with_raw_response.create(
        model="claude-sonnet-5-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"temperature": 0.5, "top_k": 3},
    )
    assert dropped.headers["x-quotapool-dropped"] == "temperature, top_k"


def test_models_are_listed_in_the_clients_shape(h: Harness) -> None:
    import openai

    listed = [m.id for m in h.anthropic().models.list()]
    assert {"claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "gpt-5.5"} <= set(listed)
    one = h.anthropic().models.retrieve("claude-sonnet-5-5")
    assert one.type == "model" and one.id == "claude-sonnet-5-5"
    with pytest.raises(anthropic.NotFoundError):
        h.anthropic().models.retrieve("claude-unknown")
    client = h.openai()
    assert "claude-opus-5-5" not in {m.id for m in client.models.list()}
    assert client.models.retrieve("gpt-5.5").id == "gpt-5.5"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9-turbo")


def test_the_codex_clis_usage_view_shows_the_pool(h: Harness) -> None:
    from quotapool.upstream.signals import parse_wham_usage

    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 900))
    with h.http() as http:
        http.post(
            "/v1/responses", json={"model": "gpt-5.5", "input": "hi"}
        )  # alpha out, bravo serves
        for path in ("/backend-api/wham/usage", "/api/codex/usage"):
            answer = http.get(path)
            assert answer.status_code == 200
            reading = parse_wham_usage(answer.json(), time.time())  # as quotapool reads an account
            assert (
                reading is not None
                and reading.primary is not None
                and reading.secondary is not None
            )
            assert reading.primary.used_percent == pytest.approx((100 + 12 + 0) / 3, abs=0.1)
            assert reading.secondary.used_percent == pytest.approx((100 + 30 + 0) / 3, abs=0.1)
            assert (
                reading.primary.resets_at is not None
                and reading.primary.resets_at <= time.time() + 3600
            )
            assert answer.json()["rate_limit"]["allowed"] is True


def test_upstream_errors_on_translated_routes_come_in_the_clients_shape(h: Harness) -> None:
    import openai

    from quotapool.testing.fake_model import Failure

    refused = Failure(400, {"detail": "Unsupported parameter: something"})
    h.fake.account("tok-a").fail_next(refused)
    with pytest.raises(anthropic.BadRequestError) as raised:
        h.anthropic().messages.create(
            model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body == {  # type: ignore[comparison-overlap]
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Unsupported parameter: something"},
    }
    h.fake.account("tok-a").fail_next(refused)
    with pytest.raises(openai.BadRequestError) as chat:
        h.openai().chat.completions.create(
            model="gpt-5.5", messages=[{"role": "user", "content": "hi"}]
        )
    assert chat.value.body["message"] == "Unsupported parameter: something"  # type: ignore[index]
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).fail_next(usage_limit(time.time() + 900))
    with pytest.raises(anthropic.RateLimitError) as limited:
        h.anthropic().messages.create(
            model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert limited.value.body["type"] == "error"  # type: ignore[index]
