"""Imported accounts in a running server: refresh, reauth, polling, live pause/resume, logins."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from quotapool.accounts import oauth
from quotapool.cli.main import app
from quotapool.domain.state import Status
from quotapool.store.sql.schema import usage_history
from quotapool.testing.fake_upstream import FakeUpstream
from tests.conftest import Harness, HarnessFactory

runner = CliRunner()


def import_accounts(home: Path, fake: FakeUpstream, ttl: dict[str, float] | None = None) -> None:
    """Write one auth.json per fake Codex account and import them with the CLI."""
    folder = home / "auths"
    folder.mkdir(parents=True, exist_ok=True)
    for token in ("tok-a", "tok-b", "tok-c"):
        account = fake.account(token)
        data = fake.auth_json(account, (ttl or {}).get(token, 3600.0))
        (folder / f"{account.name}.json").write_text(json.dumps(data))
    result = runner.invoke(
        app, ["accounts", "import", str(folder)], env={"QUOTAPOOL_HOME": str(home)}
    )
    assert result.exit_code == 0, result.output


@pytest.fixture
def pool(harness: HarnessFactory, tmp_path: Path) -> Harness:
    """A server whose three Codex accounts come from imported auth.json files."""
    return harness(
        credentials=[],
        before_start=lambda fake, _up: import_accounts(tmp_path, fake, {"tok-a": -60}),
    )


def names(h: Harness) -> dict[str, str]:
    return {c.name.split("@")[0]: c.id for c in h.qp.pool.snapshot().credentials}


def test_expired_token_is_refreshed_once_for_twenty_concurrent_requests(pool: Harness) -> None:
    h = pool
    alpha = h.fake.account("tok-a")
    alpha.refresh_delay = 0.2
    ids = names(h)

    async def burst() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=f"{h.base}/v1", api_key="k", max_retries=0
        ) as client:
            responses = await asyncio.gather(
                *(client.responses.create(model="gpt-5.5", input=f"x{i}") for i in range(20))
            )
        return [r.output_text for r in responses]

    texts = asyncio.run(burst())
    assert len(texts) == 20 and all(t.startswith("Hi from") for t in texts)
    assert alpha.refreshes == 1
    assert h.qp.accounts.refresher is not None and h.qp.accounts.refresher.refreshes == 1
    assert not h.qp.accounts.refresher.expired(ids["alpha"])
    assert "Hi from alpha!" in texts  # the refreshed account serves again


def test_invalid_grant_marks_reauth_and_traffic_moves(pool: Harness, tmp_path: Path) -> None:
    h = pool
    h.fake.account("tok-a").refresh_error = "invalid_grant"
    client = h.openai()
    served = {client.responses.create(model="gpt-5.5", input=f"x{i}").output_text for i in range(6)}
    assert served == {"Hi from bravo!", "Hi from charlie!"}
    state = h.qp.pool.snapshot().state(names(h)["alpha"])
    assert state.status is Status.REAUTH_REQUIRED and "invalid_grant" in state.reason
    deadline = time.time() + 5
    while time.time() < deadline:
        result = runner.invoke(
            app,
            ["accounts", "list", "--json"],
            env={"QUOTAPOOL_HOME": str(tmp_path), "QUOTAPOOL_PORT": "1"},
        )
        rows = {json.loads(line)["name"]: json.loads(line) for line in result.output.splitlines()}
        if rows["alpha@example.com"]["status"] == "reauth_required":
            break
        time.sleep(0.1)
    assert rows["alpha@example.com"]["status"] == "reauth_required"
    assert "accounts login" in rows["alpha@example.com"]["reason"]


def test_transient_refresh_failure_keeps_a_still_valid_account(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    h = harness(
        credentials=[],
        before_start=lambda fake, _up: import_accounts(tmp_path, fake, {"tok-a": 120}),
    )
    h.fake.account("tok-a").refresh_error = "server_error"
    client = h.openai()
    served = [client.responses.create(model="gpt-5.5", input=f"x{i}").output_text for i in range(6)]
    assert served.count("Hi from alpha!") == 2  # still valid for 2 minutes: stays in the pool
    assert h.fake.account("tok-a").refreshes == 1  # and the failed refresh backs off
    assert h.qp.pool.snapshot().state(names(h)["alpha"]).status is Status.ACTIVE


def test_a_401_from_upstream_triggers_a_refresh(pool: Harness) -> None:
    h = pool
    bravo = h.fake.account("tok-b")
    ids = names(h)
    bravo_token = h.qp.dispatcher.attempts.secrets[ids["bravo"]].token
    del h.fake.accounts[bravo_token]  # the upstream no longer accepts bravo's token
    client = h.openai()
    texts = [client.responses.create(model="gpt-5.5", input=f"x{i}").output_text for i in range(3)]
    assert all(t.startswith("Hi from") for t in texts)  # the client never saw the 401
    [failed_over] = [row for row in h.rows(3) if row["attempts"] == 2]
    assert json.loads(failed_over["decision"])[0]["selected"] == "bravo@example.com"
    assert failed_over["status"] == 200 and failed_over["credential"] != "bravo@example.com"
    deadline = time.time() + 5
    while bravo.refreshes == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert bravo.refreshes == 1
    assert h.qp.dispatcher.attempts.secrets[ids["bravo"]].token != bravo_token


def test_pause_and_resume_reach_a_running_server(pool: Harness, tmp_path: Path) -> None:
    h = pool
    env = {"QUOTAPOOL_HOME": str(tmp_path)}
    assert runner.invoke(app, ["accounts", "pause", "bravo@example.com"], env=env).exit_code == 0
    deadline = time.time() + 5
    while (
        h.qp.pool.snapshot().state(names(h)["bravo"]).status is not Status.PAUSED
        and time.time() < deadline
    ):
        time.sleep(0.05)
    client = h.openai()
    assert "Hi from bravo!" not in {
        client.responses.create(model="gpt-5.5", input=f"x{i}").output_text for i in range(4)
    }
    assert runner.invoke(app, ["accounts", "resume", "bravo@example.com"], env=env).exit_code == 0
    while (
        h.qp.pool.snapshot().state(names(h)["bravo"]).status is Status.PAUSED
        and time.time() < deadline
    ):
        time.sleep(0.05)
    assert "Hi from bravo!" in {
        client.responses.create(model="gpt-5.5", input=f"new conversation {i}").output_text
        for i in range(4)
    }


def test_usage_poller_learns_headroom_and_backs_off(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    h = harness(
        credentials=[],
        before_start=lambda fake, _up: import_accounts(tmp_path, fake),
        usage_poll_interval=0.3,
    )
    h.fake.account("tok-a").secondary_used = 77.0
    h.fake.account("tok-c").usage_status = 403
    ids = names(h)
    deadline = time.time() + 5
    while time.time() < deadline:
        secondary = h.qp.pool.snapshot().state(ids["alpha"]).secondary
        if secondary is not None and secondary.used_percent == 77.0:
            break
        time.sleep(0.05)
    assert secondary is not None and secondary.used_percent == 77.0 and secondary.resets_at
    time.sleep(1.0)
    assert h.fake.account("tok-b").usage_polls >= 3
    assert h.fake.account("tok-c").usage_polls <= 2  # 403 backs off
    with httpx.Client(base_url=h.base) as http:
        view = {c["name"]: c for c in http.get("/quotapool/pool").json()["credentials"]}
    assert view["alpha@example.com"]["secondary"]["used_percent"] == 77.0
    assert h.rows(0) == []  # polling is not a request
    engine = h.qp.accounts.store.engine
    deadline = time.time() + 5
    while time.time() < deadline:
        with engine.connect() as connection:
            history = connection.execute(select(usage_history)).mappings().all()
        if any(
            r["credential"] == "alpha@example.com" and r["used_percent"] == 77.0 for r in history
        ):
            break
        time.sleep(0.1)
    alpha = [
        r for r in history if r["credential"] == "alpha@example.com" and r["window"] == "secondary"
    ]
    assert alpha and alpha[-1]["used_percent"] == 77.0 and alpha[-1]["source"] == "poll"
    assert (
        sum(r["used_percent"] == 77.0 for r in alpha) == 1
    )  # unchanged readings are not stored again


def test_manual_login_flow(
    harness: HarnessFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(credentials=[])
    h.fake.login_as = h.fake.add("tok-new", name="newbie", account_id="acct-new")
    pkce = oauth.new_pkce()
    monkeypatch.setattr(oauth, "new_pkce", lambda: pkce)
    with httpx.Client() as http:
        redirect = http.get(oauth.authorize_url(h.upstream, pkce)).headers["location"]
    env = {"QUOTAPOOL_HOME": str(tmp_path), "QUOTAPOOL_AUTH_BASE_URL": h.upstream}
    result = runner.invoke(app, ["accounts", "login", "--manual"], input=redirect + "\n", env=env)
    assert result.exit_code == 0, result.output
    assert "newbie@example.com" in result.output and "new" in result.output
    bad = runner.invoke(
        app,
        ["accounts", "login", "--manual"],
        input="http://localhost:1455/auth/callback?code=x&state=other\n",
        env=env,
    )
    assert bad.exit_code == 1 and "state mismatch" in bad.output


def test_device_login_flow(harness: HarnessFactory, tmp_path: Path) -> None:
    h = harness(credentials=[])
    h.fake.login_as = h.fake.add("tok-dev", name="device", account_id="acct-dev")
    env = {"QUOTAPOOL_HOME": str(tmp_path), "QUOTAPOOL_AUTH_BASE_URL": h.upstream}
    result = runner.invoke(app, ["accounts", "login", "--device"], env=env)
    assert result.exit_code == 0, result.output
    assert "enter the code" in result.output and "device@example.com" in result.output


async def test_browser_callback_server_receives_the_code() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waiting = asyncio.ensure_future(oauth.wait_for_callback("st4te", port=port, timeout=5))
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"http://127.0.0.1:{port}/auth/callback?code=the-code&state=st4te"
        )
    assert answer.status_code == 200 and await waiting == "the-code"
