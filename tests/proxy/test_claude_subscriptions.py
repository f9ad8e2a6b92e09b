"""Claude subscriptions in the pool: Claude Code's requests on the accounts' OAuth tokens, other
clients refused with a clear 403 (unless the operator says otherwise), a spent window sending
the next request to the other account."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from quotapool.testing.fake_model import claude_limit
from quotapool.testing.fake_upstream import FakeUpstream
from tests.conftest import Harness, HarnessFactory

SUBSCRIPTIONS = [
    ("sk-ant-oat01-ann", "ann-max", "claude_max_5x"),
    ("sk-ant-oat01-bob", "bob-pro", "claude_pro"),
]
CLAUDE_CODE = {"x-app": "cli", "user-agent": "claude-cli/2.1.3 (external, cli)"}
ASK: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


def subscriptions(fake: FakeUpstream, _upstream: str) -> None:
    for token, name, _plan in SUBSCRIPTIONS:
        fake.add(token, name=name, claude=True)


def pool(harness: HarnessFactory, **extra: Any) -> Harness:
    credentials = [
        {"kind": "claude", "name": name, "api_key": token, "plan": plan, **extra}
        for token, name, plan in SUBSCRIPTIONS
    ]
    return harness(
        credentials=credentials,
        before_start=subscriptions,
        routing={"strategy": "sequential"},
    )


def claude_code(h: Harness) -> anthropic.Anthropic:
    """The anthropic SDK saying what Claude Code says of itself."""
    client = anthropic.Anthropic(
        base_url=h.base, api_key="client-key", max_retries=0, default_headers=CLAUDE_CODE
    )
    h.clients.append(client)
    return client


def test_claude_code_is_served_on_the_accounts_oauth_token(harness: HarnessFactory) -> None:
    h = pool(harness)
    answer = claude_code(h).messages.create(
        **ASK, extra_headers={"anthropic-beta": "claude-code-20250219"}
    )
    assert answer.content[0].text == "Hi from ann-max!"  # type: ignore[union-attr]
    sent = h.fake.seen[-1].headers
    assert sent["authorization"] == "Bearer sk-ant-oat01-ann" and "x-api-key" not in sent
    assert sent["anthropic-beta"] == "claude-code-20250219,oauth-2025-04-20"
    assert sent["x-app"] == "cli" and sent["user-agent"].startswith("claude-cli/")
    state = h.state("ann-max")  # the unified windows, as for a ChatGPT account
    assert state.primary.used_percent == 12.0 and state.secondary.used_percent == 30.0


def test_other_clients_are_refused_with_a_403_that_says_why(harness: HarnessFactory) -> None:
    h = pool(harness)
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        h.anthropic().messages.create(**ASK)
    message = refused.value.body["error"]["message"]  # type: ignore[index]
    assert "serves Claude Code only" in message and "serve_any_client" in message
    with pytest.raises(openai.PermissionDeniedError):
        h.openai().chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
        )
    assert h.fake.seen == []  # nothing reached a subscription
    assert h.rows(2)[-1]["status"] == 403


def test_serve_any_client_opens_a_subscription_to_every_client(harness: HarnessFactory) -> None:
    h = pool(harness, serve_any_client=True)
    answer = h.anthropic().messages.create(**ASK)
    assert answer.content[0].text == "Hi from ann-max!"  # type: ignore[union-attr]
    chat = h.openai().chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content == "Hi from ann-max!"


def test_a_spent_five_hour_window_sends_the_next_request_to_the_other_account(
    harness: HarnessFactory,
) -> None:
    h = pool(harness)
    reset = time.time() + 3 * 3600
    h.fake.account("sk-ant-oat01-ann").fail_next(claude_limit(reset))
    client = claude_code(h)
    assert client.messages.create(**ASK).content[0].text == "Hi from bob-pro!"  # type: ignore[union-attr]
    assert client.messages.create(**ASK).content[0].text == "Hi from bob-pro!"  # type: ignore[union-attr]
    ann = h.state("ann-max")
    assert ann.status.value == "quota_exceeded" and abs(ann.until - int(reset)) < 1
    assert [s.account for s in h.fake.seen] == ["ann-max", "bob-pro", "bob-pro"]


def test_the_fake_refuses_an_oauth_token_without_the_beta_flag_as_the_api_does(
    harness: HarnessFactory,
) -> None:
    h = pool(harness)
    headers = {"authorization": "Bearer sk-ant-oat01-ann", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=h.upstream) as http:
        bare = http.post("/v1/messages", json=ASK, headers=headers)
        as_key = http.post("/v1/messages", json=ASK, headers={"x-api-key": "sk-ant-oat01-ann"})
    assert bare.status_code == 401
    assert bare.json()["error"]["message"] == "OAuth authentication is currently not supported."
    assert as_key.status_code == 401


def test_a_claude_code_session_stays_on_its_account(harness: HarnessFactory) -> None:
    credentials = [
        {"kind": "claude", "name": name, "api_key": token, "plan": plan}
        for token, name, plan in SUBSCRIPTIONS
    ]
    h = harness(credentials=credentials, before_start=subscriptions)  # round robin
    client = claude_code(h)
    for session in ("s-1", "s-2"):
        for _ in range(3):
            client.messages.create(**ASK, extra_headers={"x-claude-code-session-id": session})
    served = [s.account for s in h.fake.seen]
    assert len(set(served[:3])) == 1 and len(set(served[3:])) == 1
    assert served[0] != served[3]  # round robin put the second session on the other account


def test_a_spent_weekly_opus_limit_cools_down_opus_only(harness: HarnessFactory) -> None:
    h = pool(harness)
    h.fake.account("sk-ant-oat01-ann").fail_next(
        claude_limit(time.time() + 86400, claim="seven_day_opus")
    )
    client = claude_code(h)
    opus = {**ASK, "model": "claude-opus-5-5"}

    def answer(body: dict[str, Any], session: str) -> str:  # each its own session
        said = client.messages.create(**body, extra_headers={"x-claude-code-session-id": session})
        return str(said.content[0].text)  # type: ignore[union-attr]

    assert answer(opus, "1") == "Hi from bob-pro!"
    assert answer(ASK, "2") == "Hi from ann-max!"  # sonnet: the plan still serves it
    assert answer(opus, "3") == "Hi from bob-pro!"
    ann = h.state("ann-max")
    assert ann.status.value == "active" and ann.model_cooldowns["claude-opus-5-5"] > time.time()


def test_a_subscription_shows_its_windows_in_metrics_and_the_admin_api(
    harness: HarnessFactory,
) -> None:
    """What the unified headers said of the account, where operators read a ChatGPT account's:
    `/metrics` and the admin API (plan, both windows with their resets)."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.admin.test_admin_api import admin

    h = pool(harness)
    account = next(a for a in h.fake.accounts.values() if a.name == "ann-max")
    account.primary_used, account.secondary_used = 37.0, 61.0
    claude_code(h).messages.create(**ASK)
    with admin(h) as api:
        rows = {row["name"]: row for row in api.get("/credentials").json()["credentials"]}
        scraped = api.get(f"{h.base}/metrics").text
    ann = rows["ann-max"]
    assert ann["kind"] == "claude" and ann["plan"] == "claude_max_5x"
    assert ann["primary"]["used_percent"] == 37 and ann["secondary"]["used_percent"] == 61
    assert ann["primary"]["resets_at"] > time.time() and ann["secondary"]["window_minutes"]
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
    }
    used = "quotapool_quota_used_percent"
    assert found[(used, (("credential", "ann-max"), ("window", "primary")))] == 37
    assert found[(used, (("credential", "ann-max"), ("window", "secondary")))] == 61
    assert found[("quotapool_credential_status", (("credential", "bob-pro"), ("status", "active")))]
