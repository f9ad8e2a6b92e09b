"""Model fallback through the real server: when no credential can serve the model asked for,
the profile's fallback models are tried in order, translated for whichever credential takes
them, the client's answer in its own API's shape."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import openai
import pytest

from quotapool.domain.outcome import StatusSet
from quotapool.domain.state import Status
from quotapool.testing.fake_model import Failure
from quotapool.testing.fake_upstream import usage_limit
from tests.conftest import Harness, HarnessFactory, codex_credentials
from tests.proxy.test_client_keys_e2e import cli, create

FALLBACK = {"gpt-5.5": ["gpt-5.4-unserved", "claude-sonnet-4-5"]}
HOURS_3 = 3 * 3600


def pool() -> list[dict[str, Any]]:
    """Three ChatGPT accounts serving gpt-5.5 and an Anthropic key."""
    codex = [{**c, "models": ["gpt-5.5"]} for c in codex_credentials()]
    return [*codex, {"kind": "anthropic", "name": "ant", "api_key": "sk-ant"}]


def key_limited(seconds: int) -> Failure:
    """The 429 an Anthropic API key answers at its rate limit."""
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}}
    return Failure(429, body, {"retry-after": str(seconds)})


def exhaust(h: Harness) -> float:
    """Every ChatGPT account limited for 3 hours; when they come back."""
    resets = h.qp.dispatcher.clock.now() + HOURS_3
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).always = usage_limit(resets)
    return resets


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    return harness(
        credentials=pool(),
        routing={"strategy": "sequential", "fallback": FALLBACK},
        profiles={"eager": {"fallback": {**FALLBACK, "return": "at once"}}},
    )


def session(name: str) -> dict[str, str]:
    return {"session_id": name}


def test_an_exhausted_pool_falls_back_to_another_model_in_the_clients_shape(h: Harness) -> None:
    exhaust(h)
    client = h.openai(default_headers=session("s1"))
    raw = client.responses.with_raw_response.create(model="gpt-5.5", input="hi")
    response = raw.parse()
    assert response.output_text.startswith("Hi from ")  # a Responses answer
    assert raw.headers["x-quotapool-fallback"] == "gpt-5.5 -> claude-sonnet-4-5"
    assert raw.headers["x-quotapool-route"].endswith("credential=ant")
    messages = [s for s in h.fake.seen if s.path == "/v1/messages"]
    assert [m.body["model"] for m in messages] == ["claude-sonnet-4-5"]
    # Every account was tried once (each answered its usage limit), then the chain.
    assert [s.account for s in h.fake.seen] == ["alpha", "bravo", "charlie", "anthropic-key"]
    (row,) = h.rows(1)
    assert row["model"] == "gpt-5.5" and row["fallback"] == "claude-sonnet-4-5"
    assert row["sent_model"] == "claude-sonnet-4-5" and row["credential"] == "ant"
    decisions = [d["reason"] for d in _decisions(row)]
    assert any("gpt-5.4-unserved" in reason for reason in decisions), decisions

    # A chat client and the anthropic SDK likewise get their own shapes.
    chat = h.openai().chat.completions.create(
        model="gpt-5.5", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content and chat.model
    assert h.rows(2)[-1]["fallback"] == "claude-sonnet-4-5"
    shown = cli(h, "requests", "--last", "2")
    assert shown.count("gpt-5.5 → claude-sonnet-4-5 (fallback)") == 2, shown


def test_a_conversation_stays_on_its_fallback_until_its_model_comes_back(h: Harness) -> None:
    resets = exhaust(h)
    for profile in ("default", "eager"):
        h.openai(default_headers={**session(profile), "x-quotapool-profile": profile})
        h.clients[-1].responses.create(model="gpt-5.5", input="first turn")
    # An operator resumes one account long before the announced reset.
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).always = None
    now = h.qp.dispatcher.clock.now()
    h.qp.pool.apply(StatusSet("alpha", now, Status.ACTIVE, "resumed"))
    seen = len(h.fake.seen)
    for client in h.clients:
        client.responses.create(model="gpt-5.5", input="second turn")
    later = [s.account for s in h.fake.seen[seen:]]
    assert later == ["anthropic-key", "alpha"]  # "after reset" stays; "at once" goes back
    fresh = h.openai(default_headers=session("new"))
    fresh.responses.create(model="gpt-5.5", input="another conversation")
    assert h.fake.seen[-1].account == "alpha"
    # Past the time the model was announced back, the conversation asks for it again.
    h.qp.dispatcher.conversations._fallbacks[session_key("default")] = (
        "claude-sonnet-4-5",
        resets - HOURS_3,
    )
    h.clients[0].responses.create(model="gpt-5.5", input="third turn")
    assert h.fake.seen[-1].account == "alpha"
    assert h.rows(7)[-1]["fallback"] is None


def session_key(name: str) -> tuple[str, str]:
    return (f"session_id:{name}", "gpt-5.5")


def test_a_client_key_never_falls_back_to_a_model_it_may_not_use(h: Harness) -> None:
    exhaust(h)
    key = create(h, "narrow", "--models", "gpt-5.5")
    client = openai.OpenAI(base_url=f"{h.base}/v1", api_key=key, max_retries=0)
    with client, pytest.raises(openai.RateLimitError) as limited:
        client.responses.create(model="gpt-5.5", input="hi")
    assert "usage limit" in str(limited.value).lower() or "limit" in str(limited.value)
    assert not [s for s in h.fake.seen if s.path == "/v1/messages"]
    assert h.rows(1)[-1]["fallback"] is None


def test_every_model_out_answers_about_the_model_asked_for(harness: HarnessFactory) -> None:
    h = harness(credentials=pool(), routing={"strategy": "sequential", "fallback": FALLBACK})
    exhaust(h)
    h.fake.account("sk-ant").always = key_limited(600)
    with pytest.raises(openai.RateLimitError) as limited:
        h.openai().responses.create(model="gpt-5.5", input="hi")
    retry_after = int(limited.value.response.headers["retry-after"])
    assert 600 - 5 <= retry_after <= 600 + 5 or retry_after > HOURS_3 - 60, retry_after
    (row,) = h.rows(1)
    assert row["status"] == 429 and row["fallback"] is None


def test_anthropic_clients_fall_back_to_an_openai_key(harness: HarnessFactory) -> None:
    openai_key = {"kind": "openai", "name": "oai", "api_key": "sk-openai", "models": ["gpt-4.1"]}
    h = harness(
        credentials=[{"kind": "anthropic", "name": "ant", "api_key": "sk-ant"}, openai_key],
        routing={"strategy": "sequential", "fallback": {"claude-sonnet-4-5": ["gpt-4.1"]}},
    )
    h.fake.account("sk-ant").always = key_limited(600)
    raw = h.anthropic().messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text.startswith("Hi from ")
    assert raw.headers["x-quotapool-fallback"] == "claude-sonnet-4-5 -> gpt-4.1"
    assert h.fake.seen[-1].account == "openai-key" and h.fake.seen[-1].body["model"] == "gpt-4.1"


def test_a_websocket_with_no_account_is_sent_to_http_where_the_fallback_applies(
    h: Harness,
) -> None:
    exhaust(h)
    h.openai().responses.create(model="gpt-5.5", input=f"limit them {uuid.uuid4()}")

    async def socket() -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses"),
        ):
            pass

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        asyncio.run(socket())
    assert refused.value.status == 426


def _decisions(row: dict[str, Any]) -> list[dict[str, Any]]:
    decisions: list[dict[str, Any]] = json.loads(row["decision"])
    return decisions


def test_fallback_is_checked_at_start(harness: HarnessFactory) -> None:
    with pytest.raises(ValueError, match="names a model twice"):
        harness(routing={"fallback": {"gpt-5.5": ["gpt-5.4", "gpt-5.4"]}})
