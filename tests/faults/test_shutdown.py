"""SIGTERM with long streams in flight: they get `shutdown_grace_seconds`, then end with an
error event in their own dialect; the process exits; every request has its log row."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx

from quotapool.store.request_log import recent
from quotapool.store.sql.db import make_engine
from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread
from tests.faults.process import serve

CONFIG = """
codex_base_url = "{upstream}/backend-api"
usage_poll_interval = 0
shutdown_grace_seconds = 1
[[credentials]]
kind = "codex"
name = "alpha"
api_key = "tok-a"
account_id = "acct-a"
[[credentials]]
kind = "anthropic"
name = "claude"
api_key = "sk-ant"
base_url = "{upstream}"
"""


def test_sigterm_cuts_long_streams_with_an_error_event_and_logs_every_row(tmp_path: Path) -> None:
    fake = FakeUpstream()
    for token, name in (("tok-a", "alpha"), ("sk-ant", "claude")):
        account = fake.add(token, name=name, account_id="acct-a" if name == "alpha" else None)
        account.event_delay = 0.5  # streams of ~10 s
        account.deltas = 20
    with run_in_thread(fake) as upstream, serve(tmp_path, CONFIG.format(upstream=upstream)) as qp:
        bodies: dict[str, bytes] = {}

        def stream(name: str, path: str, body: dict[str, object]) -> None:
            with httpx.Client(timeout=30) as client:
                bodies[name] = client.post(f"{qp.base}{path}", json=body).content

        streams = [
            ("responses", "/v1/responses", {"model": "gpt-5.5", "input": "hi", "stream": True}),
            (
                "chat",
                "/v1/chat/completions",
                {
                    "model": "gpt-5.5",
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            ),
            (
                "messages",
                "/v1/messages",
                {
                    "model": "claude-x",
                    "max_tokens": 9,
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            ),
        ]
        threads = [threading.Thread(target=stream, args=s) for s in streams]
        for thread in threads:
            thread.start()
        time.sleep(1.5)  # every stream has started
        signalled = time.monotonic()
        qp.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(15)
        qp.process.wait(15)
        took = time.monotonic() - signalled
    server, output = qp.process, qp.output
    assert server.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal
    assert not (tmp_path / "home" / "server.json").exists()  # the CLI sees no server
    assert took < 1 + 2 + 2, took  # the grace period, the drain, and start-up slack
    assert b"event: error" in bodies["responses"] and b"shutting down" in bodies["responses"]
    assert b'data: {"error"' in bodies["chat"] and b"shutting down" in bodies["chat"]
    assert b"event: error" in bodies["messages"]
    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'quotapool.db'}")
    rows = recent(engine, 10)
    engine.dispose()
    assert sorted(r["route"] for r in rows) == ["chat", "messages", "responses"]
    assert all(r["error"] == "cut at shutdown" for r in rows)
    assert "Traceback" not in output


def test_sigterm_drains_first_not_ready_but_serving_then_stops(tmp_path: Path) -> None:
    """A replica behind a load balancer: SIGTERM → `/ready` 503 "draining" while requests are
    still served for `drain_seconds`; then the listener closes and the process exits."""
    fake = FakeUpstream()
    fake.add("tok-a", name="alpha", account_id="acct-a")
    fake.add("sk-ant", name="claude")
    config = "drain_seconds = 1.5\n" + CONFIG
    with run_in_thread(fake) as upstream, serve(tmp_path, config.format(upstream=upstream)) as qp:
        assert httpx.get(f"{qp.base}/ready").json()["status"] == "ready"
        signalled = time.monotonic()
        qp.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        ready = httpx.get(f"{qp.base}/ready")
        body = {"model": "gpt-5.5", "input": "hi", "stream": True}
        served = httpx.post(f"{qp.base}/v1/responses", json=body, timeout=10)
        qp.process.wait(10)
        took = time.monotonic() - signalled
        refused = False
        try:
            httpx.get(f"{qp.base}/health")
        except httpx.ConnectError:
            refused = True
    assert ready.status_code == 503, ready.text
    assert ready.json()["status"] == "draining"
    assert 0 < ready.json()["draining"]["stops_in_seconds"] <= 1.5
    assert served.status_code == 200 and b"response.completed" in served.content
    assert served.headers["connection"] == "close"  # the client's next request goes elsewhere
    assert 1.5 <= took < 1.5 + 2, took
    assert refused and qp.process.returncode in (0, -signal.SIGTERM), qp.output
    assert "Traceback" not in qp.output
    assert "not ready; serving 1.5 s more" in qp.output
