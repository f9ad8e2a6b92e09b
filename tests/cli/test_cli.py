"""The `quotapool` command: requests log, demo, serve errors."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from quotapool.cli.main import app
from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread, usage_limit
from tests.conftest import Harness, HarnessFactory

runner = CliRunner()


def test_requests_shows_where_and_why(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(h.qp.dispatcher.clock.now() + 300))
    client = h.openai()
    client.responses.create(model="gpt-5.5", input="hi")
    client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    h.rows(2)
    monkeypatch.setenv("QUOTAPOOL_HOME", str(h.qp.settings.resolved_home))
    result = runner.invoke(app, ["requests", "--last", "2", "--json"])
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert first["credential"] == "bravo" and first["attempts"] == 2
    assert first["input_tokens"] == 1234 and first["cached_tokens"] == 1000
    assert first["ttfb_ms"] > 0 and first["latency_ms"] >= first["ttfb_ms"]
    tried, served = first["decision"]
    assert tried["selected"] == "alpha" and served["selected"] == "bravo"
    assert {
        "credential": "alpha",
        "reason": "already tried for this request: 429 usage_limit_reached",
        "until": None,
    } in served["excluded"]
    assert second["credential"] == "openai-key" and second["path"] == "/v1/chat/completions"
    table = runner.invoke(app, ["requests"], env={"COLUMNS": "250"})
    assert table.exit_code == 0
    assert "bravo" in table.output and "round_robin" in table.output


def test_demo_runs_its_tour(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--port", "0", "--duration", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "bob → carol" in result.output
    assert "Hi from carol!" in result.output


def test_serve_with_a_bad_config_exits_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("port = 'nope'")
    result = runner.invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert "invalid configuration" in result.output and "Traceback" not in result.output


def test_serve_on_a_busy_port_or_a_bad_one_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"QUOTAPOOL_HOME": str(tmp_path), "COLUMNS": "200"}
        result = runner.invoke(app, ["serve", "--port", str(port)], env=env)
    assert result.exit_code == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: port {port} is in use" in result.stderr
    assert "listening" not in result.output and "Traceback" not in result.output
    assert "[[credentials]]" in result.output  # brackets are text, not markup
    refused = runner.invoke(app, ["serve", "--port", "99999"], env=env)
    assert refused.exit_code == 2 and "--port" in refused.output


def test_an_empty_pool_says_how_to_fill_it(harness: HarnessFactory) -> None:
    h = harness(credentials=[])
    with h.http() as http:
        response = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"})
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert message.startswith("The pool is empty: add [[credentials]] to quotapool.toml")


def test_requests_fit_an_80_column_terminal_one_line_each(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(h.qp.dispatcher.clock.now() + 300))
    client = h.openai()
    for i in range(7):
        client.responses.create(model="gpt-5.5", input=f"conversation {i}")
    h.rows(7)
    monkeypatch.setenv("QUOTAPOOL_HOME", str(h.qp.settings.resolved_home))
    env = {"COLUMNS": "80", "LINES": "24"}
    lines = runner.invoke(app, ["requests"], env=env).output.splitlines()
    assert len(lines) == 14 and all(len(line) <= 80 for line in lines)  # two lines each
    assert "(2 tries)" in lines[0] and lines[1].endswith("…")
    assert lines[1].startswith("  alpha failed (429 usage_limit_reached), failed over;")
    only = runner.invoke(app, ["requests", "--credential", "alpha", "--since", "1h"], env=env)
    assert "no requests yet" in only.output or "alpha" not in only.output.split("→")[0]
    wide = runner.invoke(app, ["requests", "--wide", "-n", "1"], env={"COLUMNS": "250"})
    assert "tokens 1234/" in wide.output and "selections per weight" in wide.output
    recent = runner.invoke(app, ["requests", "--since", "120s"], env=env)  # seconds are a unit
    assert recent.exit_code == 0 and len(recent.output.splitlines()) == 14
    bad = runner.invoke(app, ["requests", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "30d" in bad.output


def test_requests_follow_prints_new_ones_as_they_come(h: Harness) -> None:
    env = {**os.environ, "QUOTAPOOL_HOME": str(h.qp.settings.resolved_home), "COLUMNS": "80"}
    follow = subprocess.Popen(
        [sys.executable, "-m", "quotapool.cli.main", "requests", "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        assert "no requests yet" in follow.stdout.readline()
        h.openai().responses.create(model="gpt-5.5", input="followed")
        line = follow.stdout.readline()  # within a second or two of the log write
        assert "gpt-5.5 → " in line and len(line.rstrip("\n")) <= 80
    finally:
        follow.terminate()
        follow.communicate(timeout=10)


def test_serve_prints_a_line_per_request_and_when_a_credential_goes_out_and_comes_back(
    tmp_path: Path,
) -> None:
    fake = FakeUpstream()
    fake.add("tok-a", name="alpha", account_id="acct-a")
    fake.add("tok-b", name="bravo", account_id="acct-b")
    with run_in_thread(fake) as upstream, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        (tmp_path / "quotapool.toml").write_text(
            f'port = {port}\ncodex_base_url = "{upstream}/backend-api"\nusage_poll_interval = 0\n'
            '[routing]\nstrategy = "sequential"\n'
            '[[credentials]]\nkind = "codex"\nname = "alpha"\napi_key = "tok-a"\naccount_id = "acct-a"\n'
            '[[credentials]]\nkind = "codex"\nname = "bravo"\napi_key = "tok-b"\naccount_id = "acct-b"\n'
        )
        env = {**os.environ, "QUOTAPOOL_HOME": str(tmp_path), "COLUMNS": "200"}
        server = subprocess.Popen(
            [sys.executable, "-m", "quotapool.cli.main", "serve", "--log-level", "info"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stderr is not None
            assert "dashboard: http://127.0.0.1" in server.stdout.readline()
            fake.account("tok-a").fail_next(usage_limit(time.time() + 2))
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                time.sleep(0.05)
            body = {"model": "gpt-5.5", "input": "hi"}
            assert httpx.post(f"{base}/v1/responses", json=body, timeout=10).status_code == 200
            lines: list[str] = []
            deadline = time.monotonic() + 15
            while not any("alpha is back in rotation" in line for line in lines):
                assert time.monotonic() < deadline, lines
                lines.append(server.stderr.readline())
        finally:
            server.terminate()
            server.communicate(timeout=15)
    text = "".join(lines)
    assert re.search(
        r"INFO quotapool\.access: responses gpt-5\.5 → bravo 200 \d+ ms, 1 failover\n", text
    )
    assert re.search(
        r"WARNING quotapool\.status: alpha is out: quota_exceeded until \d\d:\d\d:\d\d: 429", text
    )
    assert "alembic" not in text and "Traceback" not in text


def test_init_writes_a_sample_that_config_check_accepts_and_secrets_stay_masked(
    tmp_path: Path,
) -> None:
    env = {"QUOTAPOOL_HOME": str(tmp_path), "COLUMNS": "80"}
    made = runner.invoke(app, ["init"], env=env)
    assert made.exit_code == 0 and "config check" in made.output
    sample = (tmp_path / "quotapool.toml").read_text()
    assert "[routing]" in sample and "# [[credentials]]" in sample
    again = runner.invoke(app, ["init"], env=env)
    assert again.exit_code == 1 and "--force" in again.output
    (tmp_path / "quotapool.toml").write_text(
        'redis_url = "redis://:redis-secret-9@127.0.0.1:6379/9"\n'
        + sample
        + '\n[[credentials]]\nkind = "codex"\nname = "w"\napi_key = "tok-secret-123"\n'
    )
    checked = runner.invoke(app, ["config", "check", "--json"], env=env)
    assert checked.exit_code == 0, checked.output
    assert "configuration OK" in checked.stderr
    effective = json.loads(checked.stdout)
    assert effective["routing"]["strategy"] == "expiry_weighted"
    assert (
        "tok-secret-123" not in checked.output
        and effective["credentials"][0]["api_key"] == "**********"
    )
    assert effective["redis_url"] == "redis://:***@127.0.0.1:6379/9"
    assert "redis-secret-9" not in checked.output
    (tmp_path / "quotapool.toml").write_text(
        "[routing]\nstrategy = 'capacity_weighted'\nmax_attempt = 2\n"
    )
    bad = runner.invoke(app, ["config", "check"], env=env)
    assert bad.exit_code == 2 and "did you mean 'max_attempts'?" in bad.output
    assert "[routing]" in bad.output  # brackets are text, not markup
    missing = tmp_path / "env.toml"
    missing.write_text(
        '[[credentials]]\nkind = "codex"\nname = "w"\napi_key_env = "QP_UNSET_FOR_TEST"\n'
    )
    unset = runner.invoke(app, ["config", "check", "--config", str(missing)], env=env)
    assert unset.exit_code == 2 and "QP_UNSET_FOR_TEST is not set" in unset.output


def test_accounts_list_shows_every_credential_live_and_pause_works_for_configured_ones(
    harness: HarnessFactory,
) -> None:
    h = harness(routing={"strategy": "sequential"})
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 7200))
    with h.http() as http:
        http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"})
    env = {"QUOTAPOOL_HOME": str(h.qp.settings.resolved_home), "COLUMNS": "80"}
    listed = runner.invoke(app, ["accounts", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "live from the running server" in listed.stdout
    alpha = next(line for line in lines if "alpha" in line)
    assert "quota_exceeded" in alpha and re.search(r"\b(1h59m|2h00m)\b", alpha), alpha
    bravo = next(line for line in lines if "bravo" in line)
    assert re.search(r"12% ↻\d+m", bravo) and "30% ↻" in bravo, bravo
    as_json = runner.invoke(app, ["accounts", "list", "--json"], env=env)
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["name"] for r in rows] == ["alpha", "bravo", "charlie"]
    assert rows[0]["back_at"] > time.time() + 7000
    paused = runner.invoke(app, ["accounts", "pause", "bravo"], env=env)
    assert paused.exit_code == 0 and "bravo: paused (in the running server)" in paused.output
    with h.http() as http:
        moved = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"})
    assert moved.headers["x-quotapool-route"].endswith("credential=charlie")
    unknown = runner.invoke(app, ["accounts", "pause", "nobody"], env=env)
    assert unknown.exit_code == 1 and "no credential named 'nobody'" in unknown.output
    assert runner.invoke(app, ["accounts", "resume", "bravo"], env=env).exit_code == 0
    assert h.state("bravo").status.value == "active"


def test_an_account_the_cli_imports_is_live_at_once(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """The CLI tells the running server to read the accounts after it changes them: `accounts
    list` right after an import shows the account live (the server's own watch is a minute
    away here), and right after a removal no longer does."""
    h = harness(accounts_watch_interval=60)
    env = {"QUOTAPOOL_HOME": str(h.qp.settings.resolved_home), "COLUMNS": "200"}
    login = h.fake.auth_json(h.fake.add("tok-dora", name="dora", account_id="acct-dora"))
    (tmp_path / "auth.json").write_text(json.dumps(login))
    imported = runner.invoke(app, ["accounts", "import", str(tmp_path / "auth.json")], env=env)
    assert imported.exit_code == 0, imported.output

    def live() -> list[str]:
        listed = runner.invoke(app, ["accounts", "list", "--json"], env=env)
        return [json.loads(line)["name"] for line in listed.stdout.splitlines()]

    assert "dora@example.com" in live()
    assert runner.invoke(app, ["accounts", "remove", "dora@example.com"], env=env).exit_code == 0
    assert "dora@example.com" not in live()
