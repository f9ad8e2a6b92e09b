"""`quotapool serve --workers 2` as real processes sharing the port, the SQLite request log and,
through the real Redis, the pool."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from quotapool.control.runfile import run_file
from quotapool.testing.fake_upstream import FakeUpstream, rate_limited
from tests.faults.process import Served, serve
from tests.store.conftest import ACCOUNTS, REDIS
from tests.store.test_replication import wait_for


def config(url: str, strategy: str, drain_seconds: float = 0) -> str:
    lines = [
        f"drain_seconds = {drain_seconds}",  # SIGTERM stops at once unless a test drains
        f'redis_url = "{REDIS}"',
        f'codex_base_url = "{url}/backend-api"',
        f'auth_base_url = "{url}"',
        "usage_poll_interval = 0",
        "codex_models_refresh = 0",
        "shutdown_grace_seconds = 5",  # a drain waits at most this long: well inside the
        # 30 s the test harness gives a stopping server
        f'[routing]\nstrategy = "{strategy}"',
    ]
    for token, name, account in ACCOUNTS:
        lines.append(
            f'[[credentials]]\nkind = "codex"\nname = "{name}"\napi_key = "{token}"\naccount_id = "{account}"'
        )
    return "\n".join(lines) + "\n"


def replicas_seen(served: Served, tries: int = 40) -> set[str]:
    """The replicas that answered `tries` requests on fresh connections."""
    found = set()
    for _ in range(tries):
        with httpx.Client(base_url=served.base) as http:
            found.add(http.get("/ready").json()["replication"]["replica"])
    return found


def ask(served: Served, body: Mapping[str, object]) -> int:
    with httpx.Client(base_url=served.base, timeout=30) as http:  # a new connection each time
        return http.post("/v1/responses", json=body).status_code


def test_two_workers_share_limits_and_conversations(
    fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake
    with serve(tmp_path, config(url, "sequential"), "--workers", "2") as served:
        wait_for(lambda: len(replicas_seen(served, 10)) == 2, timeout=20)
        upstream.account("tok-a").fail_next(rate_limited(600))
        assert ask(served, {"model": "gpt-5.5", "input": "hi"}) == 200
        assert upstream.served_by() == ["alpha", "bravo"]
        time.sleep(0.1)  # the other worker has folded the limit by now
        for _ in range(20):  # whichever worker takes them, none goes back to alpha
            assert ask(served, {"model": "gpt-5.5", "input": "hi"}) == 200
        assert set(upstream.served_by()[2:]) == {"bravo"}
        assert run_file(tmp_path / "home", replicas=True).exists()  # one per host with Redis
    assert not run_file(tmp_path / "home", replicas=True).exists()  # SIGTERM: drained, gone


def test_a_conversation_alternating_between_workers_stays_on_its_account(
    fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake
    with serve(tmp_path, config(url, "round_robin"), "--workers", "2") as served:
        wait_for(lambda: len(replicas_seen(served, 10)) == 2, timeout=20)
        turn = {"model": "gpt-5.5", "input": "hi", "prompt_cache_key": "conversation-1"}
        for n in range(12):
            assert ask(served, turn) == 200
            assert ask(served, {"model": "gpt-5.5", "input": f"another conversation {n}"}) == 200
        turns = upstream.served_by()[::2]
        assert len(set(turns)) == 1, turns
        assert len(set(upstream.served_by()[1::2])) >= 2  # the others rotate (alpha is busy)


def test_a_worker_that_dies_is_replaced_and_leaves_nothing_busy(
    fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake
    upstream.account("tok-a").event_delay = 0.05
    with serve(tmp_path, config(url, "round_robin"), "--workers", "2") as served:
        wait_for(lambda: len(replicas_seen(served, 10)) == 2, timeout=20)
        before = replicas_seen(served, 20)
        found = subprocess.run(
            ["pgrep", "-P", str(served.process.pid)], capture_output=True, text=True, check=True
        )
        workers = [int(pid) for pid in found.stdout.split()]
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        wait_for(
            lambda: len(replicas_seen(served, 10)) == 2 and replicas_seen(served, 20) != before,
            timeout=20,
        )
        for _ in range(6):
            assert ask(served, {"model": "gpt-5.5", "input": "hi"}) == 200
        with httpx.Client(base_url=served.base) as http:
            for _ in range(6):
                pool = http.get("/quotapool/pool").json()
                assert all(c["in_flight"] == 0 for c in pool["credentials"])
        with httpx.Client(base_url=served.base) as http:
            wait_for(  # what the killed worker had in flight stops counting within 2 s
                lambda: all(
                    c["in_flight_elsewhere"] == 0
                    for c in http.get("/quotapool/pool").json()["credentials"]
                ),
                timeout=5,
            )
    assert "worker 0" in served.output or "worker 1" in served.output
    assert "starting it again" in served.output
