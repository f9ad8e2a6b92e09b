"""Claude subscriptions as users have them — Claude Code's own credentials file, a sign-in with
a pasted code, a `claude setup-token` token — against the strict fake Claude OAuth server:
named and sized by the profile, refreshed once however many wait, usage polled."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from typer.testing import CliRunner

from quotapool.accounts import oauth
from quotapool.cli.main import app
from quotapool.domain.state import Status
from quotapool.testing.fake_model import Account
from quotapool.testing.fake_upstream import FakeUpstream
from tests.conftest import Harness, HarnessFactory

runner = CliRunner()
CLAUDE_CODE = {"x-app": "cli", "user-agent": "claude-cli/2.1.3 (external, cli)"}
ASK: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


def env(home: Path, upstream: str, **extra: str) -> dict[str, str]:
    return {
        "QUOTAPOOL_HOME": str(home),
        "QUOTAPOOL_CLAUDE_API_BASE_URL": upstream,
        "QUOTAPOOL_CLAUDE_AUTH_BASE_URL": upstream,
        "QUOTAPOOL_CLAUDE_AUTHORIZE_URL": f"{upstream}/claude/oauth/authorize",
        **extra,
    }


def import_claude(home: Path, fake: FakeUpstream, upstream: str, ttl: dict[str, float]) -> None:
    """Claude Code's `.credentials.json` of each subscription, imported with the CLI."""
    fake.claude.tiers["zed"] = "default_claude_max_20x"
    for name, seconds in ttl.items():
        account = fake.add(f"first-{name}", name=name, claude=True)
        folder = home / "claude" / name
        folder.mkdir(parents=True)
        credentials = fake.claude.credentials_json(account, seconds)
        (folder / ".credentials.json").write_text(json.dumps(credentials))
    result = runner.invoke(
        app, ["accounts", "import", str(home / "claude")], env=env(home, upstream)
    )
    assert result.exit_code == 0, result.output


def pool(harness: HarnessFactory, tmp_path: Path, ttl: dict[str, float], **extra: Any) -> Harness:
    return harness(
        credentials=[],
        before_start=lambda fake, up: import_claude(tmp_path, fake, up, ttl),
        routing={"strategy": "sequential"},
        **extra,
    )


def claude_code(h: Harness) -> anthropic.Anthropic:
    client = anthropic.Anthropic(
        base_url=h.base, api_key="k", max_retries=0, default_headers=CLAUDE_CODE
    )
    h.clients.append(client)
    return client


def named(fake: FakeUpstream, name: str) -> Account:
    return next(a for a in fake.accounts.values() if a.name == name)


def listed(home: Path, upstream: str) -> dict[str, dict[str, Any]]:
    result = runner.invoke(app, ["accounts", "list", "--json"], env=env(home, upstream))
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in map(json.loads, result.output.splitlines())}


def test_claude_codes_credentials_file_becomes_a_named_sized_account(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    h = pool(harness, tmp_path, {"amy": 28800, "zed": 28800}, usage_poll_interval=0.2)
    rows = listed(tmp_path, h.upstream)
    assert rows["amy@example.com"]["kind"] == "claude"
    assert rows["amy@example.com"]["plan"] == "claude_max_5x"
    assert rows["zed@example.com"]["plan"] == "claude_max_20x"
    amy = named(h.fake, "amy")
    answer = claude_code(h).messages.create(**ASK)
    assert answer.content[0].text == "Hi from amy!"  # type: ignore[union-attr]
    assert h.fake.seen[-1].headers["authorization"] == f"Bearer {amy.token}"
    amy.primary_used, amy.secondary_used = 41.0, 63.0  # read back by the usage poll
    deadline = time.monotonic() + 10
    amy_id = _id(h, "amy@example.com")
    while (window := h.state(amy_id).secondary) is None or window.used_percent != 63.0:
        assert time.monotonic() < deadline, "the usage poll never read the windows"
        time.sleep(0.05)
    assert h.state(amy_id).primary.used_percent == 41.0


DUE = 200.0
"""A token with less than REFRESH_AHEAD_SECONDS left: renewed before it is used."""


def test_a_token_about_to_expire_is_refreshed_once_for_every_waiting_request(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    h = pool(harness, tmp_path, {"amy": DUE})
    amy = named(h.fake, "amy")
    client = claude_code(h)
    with ThreadPoolExecutor(8) as workers:
        texts = list(workers.map(lambda _: client.messages.create(**ASK), range(8)))
    assert {t.content[0].text for t in texts} == {"Hi from amy!"}  # type: ignore[union-attr]
    assert amy.refreshes == 1
    assert {s.headers["authorization"] for s in h.fake.seen} == {f"Bearer {amy.token}"}


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    h = pool(harness, tmp_path, {"amy": DUE})
    h.fake.claude.omit_refresh_token = True
    assert claude_code(h).messages.create(**ASK).content[0].text == "Hi from amy!"  # type: ignore[union-attr]
    refresher = h.qp.accounts.refresher
    assert refresher is not None
    state = refresher.accounts[_id(h, "amy@example.com")]
    kept = state.tokens.refresh_token
    assert kept is not None and kept in h.fake.claude.refresh_tokens  # still the valid one


def _id(h: Harness, name: str) -> str:
    return next(c.id for c in h.qp.pool.snapshot().credentials if c.name == name)


def test_a_refresh_answered_429_waits_as_long_as_it_is_told(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    h = pool(harness, tmp_path, {"amy": DUE})
    h.fake.claude.refresh_status = 429
    assert claude_code(h).messages.create(**ASK).content[0].text == "Hi from amy!"  # type: ignore[union-attr]
    refresher = h.qp.accounts.refresher
    assert refresher is not None
    state = refresher.accounts[_id(h, "amy@example.com")]
    assert state.retry_at >= time.time() + 100  # Retry-After: 120, not the 15 s backoff


def test_a_refused_refresh_asks_for_a_new_login(harness: HarnessFactory, tmp_path: Path) -> None:
    h = pool(harness, tmp_path, {"amy": DUE, "zed": 28800})
    h.fake.claude.refresh_tokens.clear()  # the refresh token was revoked: invalid_grant
    h.fake.claude.expires[named(h.fake, "amy").token] = 0.0  # and the access token with it
    answer = claude_code(h).messages.create(**ASK)
    assert answer.content[0].text == "Hi from zed!"  # type: ignore[union-attr]
    assert h.state(_id(h, "amy@example.com")).status is Status.REAUTH_REQUIRED


def test_a_sign_in_with_a_pasted_code_adds_the_subscription(
    harness: HarnessFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(credentials=[])
    h.fake.claude.login_as = h.fake.add("unused", name="newbie", claude=True)
    pkce = oauth.new_pkce()
    monkeypatch.setattr(oauth, "new_pkce", lambda: pkce)
    from quotapool.accounts import claude_oauth

    page = claude_oauth.authorize_url(f"{h.upstream}/claude/oauth/authorize", pkce)
    with httpx.Client() as http:
        pasted = http.get(page).text  # what the sign-in page shows: CODE#STATE
    home = tmp_path / "cli"
    command = ["accounts", "login", "--kind", "claude", "--manual", "--no-browser"]
    result = runner.invoke(app, command, input=pasted + "\n", env=env(home, h.upstream))
    assert result.exit_code == 0, result.output
    row = listed(home, h.upstream)["newbie@example.com"]
    assert row["kind"] == "claude" and row["plan"] == "claude_max_5x"
    again = runner.invoke(app, command, input="bad-code#other-state\n", env=env(home, h.upstream))
    assert again.exit_code == 1 and "state mismatch" in again.output


def test_a_sign_in_in_the_browser_comes_back_to_this_machine(
    harness: HarnessFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser, signed in, is sent to localhost:PORT/callback with the code; the CLI that
    listens there trades it (with the same redirect_uri, as the server checks)."""
    import threading
    import webbrowser

    from quotapool.accounts import claude_oauth
    from tests.faults.process import free_port

    h = harness(credentials=[])
    h.fake.claude.login_as = h.fake.add("unused", name="browsing", claude=True)
    monkeypatch.setattr(claude_oauth, "CALLBACK_PORT", free_port())
    visited: list[int] = []

    def browser(url: str) -> bool:  # a browser: follows the sign-in page's redirect
        def visit() -> None:
            visited.append(httpx.get(url, follow_redirects=True, timeout=10).status_code)

        threading.Thread(target=visit, daemon=True).start()
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    home = tmp_path / "cli"
    result = runner.invoke(
        app, ["accounts", "login", "--kind", "claude"], env=env(home, h.upstream)
    )
    assert result.exit_code == 0, result.output
    assert visited == [200]  # the page the callback showed ("login complete")
    assert listed(home, h.upstream)["browsing@example.com"]["kind"] == "claude"


def test_a_setup_token_is_added_as_a_key(harness: HarnessFactory, tmp_path: Path) -> None:
    h = harness(credentials=[], routing={"strategy": "sequential"}, accounts_watch_interval=0.1)
    h.fake.add("sk-ant-oat01-long-lived", name="team-max", claude=True)
    result = runner.invoke(
        app,
        ["accounts", "add-key", "--kind", "claude", "--name", "team-max", "--token-env", "TOK"],
        env=env(tmp_path, h.upstream, TOK="sk-ant-oat01-long-lived"),
    )
    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 10
    while not h.qp.pool.snapshot().credentials:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert claude_code(h).messages.create(**ASK).content[0].text == "Hi from team-max!"  # type: ignore[union-attr]


def test_importing_an_expired_file_says_what_to_do(harness: HarnessFactory, tmp_path: Path) -> None:
    h = harness(credentials=[])
    account = h.fake.add("first", name="old", claude=True)
    (tmp_path / "c.json").write_text(json.dumps(h.fake.claude.credentials_json(account, -60)))
    result = runner.invoke(
        app, ["accounts", "import", str(tmp_path / "c.json")], env=env(tmp_path / "h", h.upstream)
    )
    assert result.exit_code == 1
    assert (
        "has expired: run `claude` once" in result.output
        and "nothing was imported" in result.output
    )


def test_a_renewed_login_exports_as_claude_codes_credentials_file(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """After the pool renewed the imported login (so the file it came from is stale), `accounts
    export` writes the current one where Claude Code reads it; it imports back as it was."""
    h = pool(harness, tmp_path, {"amy": DUE})
    assert claude_code(h).messages.create(**ASK).content[0].text == "Hi from amy!"  # type: ignore[union-attr]
    amy = named(h.fake, "amy")
    out = tmp_path / "exported" / ".credentials.json"
    out.parent.mkdir()
    command = ["accounts", "export", "amy@example.com", "--out", str(out)]
    result = runner.invoke(app, command, env=env(tmp_path, h.upstream))
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    oauth = json.loads(out.read_text())["claudeAiOauth"]
    assert oauth["accessToken"] == amy.token  # the renewed one, not the imported one
    assert oauth["refreshToken"] in h.fake.claude.refresh_tokens
    assert oauth["expiresAt"] > time.time() * 1000 and oauth["subscriptionType"] == "max"
    again = tmp_path / "again"
    imported = runner.invoke(app, ["accounts", "import", str(out)], env=env(again, h.upstream))
    assert imported.exit_code == 0, imported.output
    assert listed(again, h.upstream)["amy@example.com"]["plan"] == "claude_max_5x"
    add = ["accounts", "add-key", "--kind", "claude", "--name", "team", "--token-env", "TOK"]
    added = runner.invoke(app, add, env=env(tmp_path, h.upstream, TOK="sk-ant-oat01-x" * 3))
    assert added.exit_code == 0, added.output
    key = runner.invoke(app, ["accounts", "export", "team"], env=env(tmp_path, h.upstream))
    assert key.exit_code == 1 and "nothing to export" in key.output  # a setup-token: no login
