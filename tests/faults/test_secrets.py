"""Secrets stay secret: private files, pool secrets redacted from whatever an upstream echoes,
client headers forwarded by allowlist only."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quotapool.accounts import oauth
from quotapool.cli.main import app
from quotapool.domain.egress import DIRECT
from quotapool.net.aiohttp import outbound
from quotapool.secrets import KeyFileError, load_or_create_key
from quotapool.testing.fake_upstream import Failure, FakeUpstream, run_in_thread
from tests.conftest import HarnessFactory

KEY = "sk-live-0123456789abcdef"
TOKEN = "eyJ-access-token-of-alpha-0123456789"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_database_and_key_are_private(harness: HarnessFactory, tmp_path: Path) -> None:
    h = harness()
    home = h.qp.settings.resolved_home
    with h.http() as http:
        http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"})
    h.rows(1)
    assert mode(home / "secret.key") == 0o600
    for name in ("quotapool.db", "quotapool.db-wal", "quotapool.db-shm"):
        assert mode(home / name) == 0o600, name
    fresh = tmp_path / "fresh-home"
    load_or_create_key(fresh)
    assert mode(fresh) == 0o700


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    (tmp_path / "secret.key").chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_key(tmp_path)


def test_an_upstream_echoing_the_key_never_shows_it(
    harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def before_start(fake: FakeUpstream, _upstream: str) -> None:
        fake.add(KEY, name="echo-key")
        fake.add(TOKEN, name="echo-account", account_id="acct-e")

    h = harness(
        credentials=[
            {"kind": "openai", "name": "echo-key", "api_key": KEY, "models": ["gpt-4.1"]},
            {
                "kind": "codex",
                "name": "echo-account",
                "api_key": TOKEN,
                "account_id": "acct-e",
                "models": ["gpt-5.5"],
            },
        ],
        before_start=before_start,
    )
    echo = {"x-echo": f"Bearer {KEY}"}
    h.fake.account(KEY).fail_next(
        Failure(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}, echo),
        Failure(500, {"error": {"type": "server_error", "message": f"boom for {KEY}"}}),
    )
    h.fake.account(TOKEN).fail_next(
        Failure(400, {"detail": f"token {TOKEN} malformed"}, {"x-echo": f"Bearer {TOKEN}"}),
        Failure(200, {"error": {"type": "server_error", "message": TOKEN}}, in_stream=True),
    )
    chat = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
    with h.http() as http:
        answers = [
            http.post("/v1/chat/completions", json=chat),
            http.post("/v1/chat/completions", json=chat),
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": "x"}),
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": "x", "stream": True}),
        ]
    # A refused key is a pool outage for this model (503); the client's own 400 is relayed.
    assert [a.status_code for a in answers][:3] == [503, 503, 400]
    assert "[redacted]" in answers[2].text and "[redacted]" in answers[2].headers["x-echo"]
    rows = h.rows(4)
    monkeypatch.setenv("QUOTAPOOL_HOME", str(h.qp.settings.resolved_home))
    cli = CliRunner().invoke(app, ["requests", "--json"]).output
    dump = "".join(a.text + json.dumps(dict(a.headers)) for a in answers)
    dump += repr(rows) + cli + caplog.text + repr(h.qp.pool.snapshot())
    assert KEY not in dump and TOKEN not in dump


def test_client_headers_pass_by_allowlist(harness: HarnessFactory) -> None:
    h = harness(
        credentials=[
            {
                "kind": "codex",
                "name": "alpha",
                "api_key": "tok-a",
                "account_id": "acct-a",
                "models": ["gpt-5.5"],
            },
            {"kind": "openai", "name": "openai-key", "api_key": "sk-openai", "models": ["gpt-4.1"]},
            {"kind": "anthropic", "name": "anthropic-key", "api_key": "sk-ant"},
        ]
    )
    sneaky = {
        "api-key": "client-azure-key",
        "x-goog-api-key": "client-google-key",
        "openai-organization": "org-client",
        "openai-project": "proj-client",
        "cookie": "session=client",
        "session-id": "thread-1",
        "anthropic-beta": "tools-2024",
        "x-stainless-lang": "python",
    }
    with h.http() as http:
        http.post("/v1/responses", json={"model": "gpt-5.5", "input": "x"}, headers=sneaky)
        http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]},
            headers=sneaky,
        )
        http.post(
            "/v1/messages",
            json={
                "model": "claude-x",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers=sneaky,
        )
    codex, openai_call, anthropic_call = h.fake.seen[-3:]
    for seen in (codex, openai_call, anthropic_call):
        for name in (
            "api-key",
            "x-goog-api-key",
            "openai-organization",
            "openai-project",
            "cookie",
            "x-forwarded-for",
        ):
            assert name not in seen.headers, (seen.path, name)
    assert codex.headers["session-id"] == "thread-1" and "anthropic-beta" not in codex.headers
    assert openai_call.headers["x-stainless-lang"] == "python"
    assert anthropic_call.headers["anthropic-beta"] == "tools-2024"


def test_the_auth_server_echoing_a_refresh_token_is_not_repeated() -> None:
    fake = FakeUpstream()
    account = fake.add("tok-r", name="r", account_id="acct-r")
    refresh_token = fake.auth_json(account)["tokens"]["refresh_token"]
    account.refresh_error = "server_error"

    async def scenario(base: str) -> str:
        async with outbound(DIRECT) as way:
            try:
                await oauth.refresh(way, base, refresh_token)
            except oauth.OAuthError as exc:
                return str(exc)
        return ""

    with run_in_thread(fake) as base:
        message = asyncio.run(scenario(base))
    assert "refused" in message and refresh_token not in message and "[redacted]" in message
