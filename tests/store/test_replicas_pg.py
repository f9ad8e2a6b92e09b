"""Replicas as on several machines: `quotapool serve` processes with their own homes, sharing
the real PostgreSQL (request log, accounts, keys, conversations) and the real Redis (the pool):
one stopped, one killed, under load; a conversation and a limit across two; three rotating
evenly and holding a key's request limit exactly, and refreshing a token once; the leader lease
passing on when its holder dies; a Redis restart under load."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import text

from quotapool.secrets import KEY_FILE_NAME
from quotapool.store.sql.db import make_engine
from quotapool.testing.fake_upstream import FakeUpstream, rate_limited
from tests.faults.gate import Gate
from tests.faults.process import Served, serve
from tests.pg import postgres_schema
from tests.store.conftest import REDIS
from tests.store.test_replication import wait_for
from tests.store.test_workers import ask, config

STREAM = {"model": "gpt-5.5", "input": "hi", "stream": True}


class Balancer:
    """What a load balancer does for clients: each request to the next replica its health
    checks (`/ready` every 0.1 s) find ready, else to the next one up (a replica that refuses
    the connection is skipped); counts what the clients got."""

    def __init__(self, replicas: list[Served]) -> None:
        self.replicas = replicas
        self.turn = itertools.count()
        self.ok = self.failed = 0
        self.failures: list[str] = []
        self.answered: list[str] = []
        """Request ids of the complete answers."""
        self.ready = {served.base: True for served in replicas}
        self.statuses: dict[str, set[str]] = {served.base: set() for served in replicas}
        """What each replica's `/ready` said."""
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def one(self, body: dict[str, object]) -> None:
        start = next(self.turn)
        turn = [self.replicas[(start + i) % len(self.replicas)] for i in range(len(self.replicas))]
        for served in [s for s in turn if self.ready[s.base]] or turn:
            try:
                with httpx.Client(base_url=served.base, timeout=30) as http:
                    answer = http.post("/v1/responses", json=body)
                    complete = answer.status_code == 200 and b"response.completed" in answer.content
                    what = f"{answer.status_code} {answer.text[:200]}"
            except httpx.ConnectError:
                continue  # down: the next one
            except httpx.TransportError as exc:
                complete, what = False, repr(exc)  # cut while being served: the client sees it
            with self.lock:
                if complete:
                    self.ok += 1
                    self.answered.append(answer.headers["x-quotapool-request-id"])
                else:
                    self.failed += 1
                    self.failures.append(what)
            return

    def check(self) -> None:
        while not self.stop.wait(0.1):
            for served in self.replicas:
                try:
                    answer = httpx.get(f"{served.base}/ready", timeout=1)
                    status = str(answer.json()["status"])
                except httpx.TransportError:
                    status = "down"
                self.statuses[served.base].add(status)
                self.ready[served.base] = status == "ready"

    @contextlib.contextmanager
    def load(self, clients: int) -> Iterator[Balancer]:
        """`clients` sending requests back to back until the block ends."""

        def run() -> None:
            while not self.stop.is_set():
                self.one(STREAM)
                if self.stop.wait(0.005):  # never a busy loop, even with every replica down
                    return

        threads = [threading.Thread(target=run) for _ in range(clients)]
        threads.append(threading.Thread(target=self.check))
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=30)


def busy(served: Served) -> list[tuple[int, int]]:
    with httpx.Client(base_url=served.base) as http:
        pool = http.get("/quotapool/pool").json()
    return [(c["in_flight"], c["in_flight_elsewhere"]) for c in pool["credentials"]]


def logged(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            query = "SELECT request_id FROM requests WHERE status = 200"
            return {str(row[0]) for row in connection.execute(text(query))}
    finally:
        engine.dispose()


def streaming_pair(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path, drain_seconds: float = 0
) -> str:
    """The configuration of replicas a and b (their folders made), round robin on accounts
    whose streams take ~50 ms: always some in flight."""
    upstream, url = fake
    for token in ("tok-a", "tok-b", "tok-c"):
        upstream.account(token).event_delay = 0.01
    for name in "ab":
        (tmp_path / name).mkdir()
    return f'database_url = "{database}"\n' + config(url, "round_robin", drain_seconds)


def test_replicas_starting_at_once_on_a_new_database_all_start() -> None:
    """Each replica brings the schema up to date as it starts: four at once on an empty
    database (three times), every one gets there (before: all but one failed on a duplicate
    table in 4 rounds of 5)."""
    migrate = (
        "import sys; from quotapool.store.sql.db import make_engine, migrate;"
        "migrate(make_engine(sys.argv[1]))"
    )
    for _ in range(3):
        with postgres_schema() as url:
            starting = [
                subprocess.Popen(
                    [sys.executable, "-c", migrate, url],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                for _ in range(4)
            ]
            said = [process.communicate(timeout=60)[0].decode() for process in starting]
            assert [process.returncode for process in starting] == [0] * 4, said


def test_a_replica_stopped_under_load_loses_no_row_and_no_request(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    shared = streaming_pair(fake, database, tmp_path, drain_seconds=1)
    with serve(tmp_path / "a", shared) as a, serve(tmp_path / "b", shared) as b:
        wait_for(lambda: len(busy(a)) == 3 and len(busy(b)) == 3, timeout=20)
        with Balancer([a, b]).load(clients=6) as balancer:
            time.sleep(1.5)
            b.process.send_signal(signal.SIGTERM)  # a rolling restart: b drains and goes
            b.process.wait(timeout=30)
            time.sleep(1.0)  # a alone serves everything meanwhile
    assert "draining" in balancer.statuses[b.base]  # the balancer took b out before it closed
    missing = set(balancer.answered) - logged(database)
    assert not missing, (sorted(missing), b.output[-4000:])  # every answer has its row
    assert balancer.failed == 0 and balancer.ok > 50, balancer.failures


def test_a_replica_killed_under_load_leaves_nothing_busy_and_loses_no_row(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    shared = streaming_pair(fake, database, tmp_path)
    with serve(tmp_path / "a", shared) as a:
        with serve(tmp_path / "b", shared) as b:  # b killed with streams in flight
            wait_for(lambda: len(busy(b)) == 3, timeout=20)
            with Balancer([a, b]).load(clients=6) as balancer:
                time.sleep(1.0)
                os.kill(b.process.pid, signal.SIGKILL)
                b.process.wait(timeout=10)
                time.sleep(0.5)
        # What b had in flight stops counting on a within 2 s; a's own requests have all ended.
        wait_for(lambda: busy(a) == [(0, 0)] * 3, timeout=5)
        assert balancer.ok > 20  # the clients of the streams b was sending saw them cut
        # Every answer b gave has its row once b is back: written ahead to its journal.
        answered = set(balancer.answered)
        with serve(tmp_path / "b", shared):
            wait_for(lambda: answered <= logged(database), timeout=10)


def test_a_conversation_keeps_its_account_and_a_limit_is_avoided_whichever_replica_serves(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    upstream, url = fake
    shared = f'database_url = "{database}"\n' + config(url, "round_robin")
    for name in "ab":
        (tmp_path / name).mkdir()
    with serve(tmp_path / "a", shared) as a, serve(tmp_path / "b", shared) as b:
        wait_for(lambda: _sharing(a) == _sharing(b) == "ok", timeout=20)
        turn = {"model": "gpt-5.5", "input": "hi", "prompt_cache_key": "conversation-1"}
        for n in range(6):  # its turns alternate between the replicas, others in between
            replica = (a, b)[n % 2]
            assert ask(replica, turn) == 200
            assert ask(replica, {"model": "gpt-5.5", "input": f"other {n}"}) == 200
            time.sleep(0.1)  # (the other replica knows the binding within tens of ms)
        served = upstream.served_by()
        assert len(set(served[0::2])) == 1, served  # every turn on the conversation's account
        assert len(set(served[1::2])) > 1, served  # while the rotation went on

        upstream.account("tok-a").fail_next(rate_limited(600))
        for n in range(3):  # a's rotation reaches alpha: a 429, a failover, a limit learnt
            assert ask(a, {"model": "gpt-5.5", "input": f"limit {n}"}) == 200
        assert _status(a, "alpha") == "rate_limited"
        wait_for(lambda: _status(b, "alpha") == "rate_limited", timeout=1)
        before = len(upstream.served_by())
        for n in range(6):
            assert ask(b, {"model": "gpt-5.5", "input": f"after {n}"}) == 200
        assert "alpha" not in upstream.served_by()[before:]  # b never sent it to alpha


def test_three_replicas_rotate_evenly_and_share_a_key_limit_exactly(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    upstream, url = fake
    shared = f'database_url = "{database}"\naccounts_watch_interval = 0.1\n' + config(
        url, "round_robin"
    )
    with contextlib.ExitStack() as stack:
        group = []
        for name in "abc":
            (tmp_path / name).mkdir()
            group.append(stack.enter_context(serve(tmp_path / name, shared)))
        wait_for(lambda: all(len(busy(each)) == 3 for each in group), timeout=20)
        for n in range(30):  # each replica in turn: the rotation is the pool's, not theirs
            with httpx.Client(base_url=group[n % 3].base) as http:
                body = {"model": "gpt-5.5", "input": f"conversation {n}"}
                assert http.post("/v1/responses", json=body).status_code == 200
            time.sleep(0.1)
        served = upstream.served_by()
        counts = {name: served.count(name) for name in ("alpha", "bravo", "charlie")}
        assert max(counts.values()) - min(counts.values()) <= 2, counts

        made = subprocess.run(  # the CLI, on any machine with the configuration
            [sys.executable, "-m", "quotapool.cli.main", "keys", "create", "burst",
             "--limit", "requests=6/day", "--config", str(tmp_path / "a" / "quotapool.toml")],
            env={**os.environ, "QUOTAPOOL_HOME": str(tmp_path / "a" / "home")},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        key = made.stdout.strip().splitlines()[-1]
        for each in group:  # every replica has read it from the shared database
            wait_for(lambda each=each: _needs_key(each), timeout=10)
        for token in ("tok-a", "tok-b", "tok-c"):
            upstream.account(token).event_delay = 0.05  # the answers overlap

        def ask(served: Served) -> int:
            with httpx.Client(base_url=served.base, timeout=30) as http:
                headers = {"authorization": f"Bearer {key}"}
                body = {"model": "gpt-5.5", "input": "hi"}
                return http.post("/v1/responses", json=body, headers=headers).status_code

        with ThreadPoolExecutor(18) as pool:
            statuses = list(pool.map(ask, group * 6))
        assert sorted(statuses) == [200] * 6 + [429] * 12


def test_twenty_requests_on_an_expired_token_across_three_replicas_refresh_it_once(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    """With refresh-token rotation a second refresh would log the account out: the replica that
    takes the lease refreshes, the others wait for it and read the tokens it saved."""
    upstream, url = fake
    shared = "\n".join([
        f'database_url = "{database}"', f'redis_url = "{REDIS}"',
        f'codex_base_url = "{url}/backend-api"', f'auth_base_url = "{url}"',
        "usage_poll_interval = 0", "codex_models_refresh = 0", "drain_seconds = 0",
        '[routing]\nstrategy = "sequential"',
    ]) + "\n"  # fmt: skip
    first = tmp_path / "import"
    (first / "auths").mkdir(parents=True)
    (first / "quotapool.toml").write_text(shared)
    for token, ttl in (("tok-a", -60), ("tok-b", 3600), ("tok-c", 3600)):  # alpha's has expired
        account = upstream.account(token)
        (first / "auths" / f"{account.name}.json").write_text(
            json.dumps(upstream.auth_json(account, ttl))
        )
    subprocess.run(  # the CLI, on any machine with the configuration
        [sys.executable, "-m", "quotapool.cli.main", "accounts", "import", str(first / "auths")],
        env={**os.environ, "QUOTAPOOL_HOME": str(first)}, capture_output=True, check=True,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        group = []
        for name in "abc":
            home = tmp_path / name / "home"
            home.mkdir(parents=True)  # each replica its own home, the same key sealing secrets
            shutil.copy2(first / KEY_FILE_NAME, home / KEY_FILE_NAME)
            group.append(stack.enter_context(serve(tmp_path / name, shared)))
        wait_for(lambda: all(len(busy(each)) == 3 for each in group), timeout=20)
        alpha = upstream.account("tok-a")
        alpha.refresh_delay = 0.3

        def ask(n: int) -> tuple[int, str]:
            with httpx.Client(base_url=group[n % 3].base, timeout=30) as http:
                answer = http.post("/v1/responses", json={"model": "gpt-5.5", "input": f"x{n}"})
                return answer.status_code, answer.text[:200]

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(ask, range(20)))
        assert [status for status, _ in answers] == [200] * 20, answers
        assert alpha.refreshes == 1
        assert upstream.served_by() == ["alpha"] * 20  # nobody gave up on alpha meanwhile


def _needs_key(served: Served) -> bool:
    with httpx.Client(base_url=served.base) as http:
        return (
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": "x"}).status_code == 401
        )


def test_one_replica_polls_usage_and_another_takes_over_when_it_dies(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    upstream, url = fake
    shared = f'database_url = "{database}"\n' + config(url, "round_robin").replace(
        "usage_poll_interval = 0", "usage_poll_interval = 0.5"
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with serve(tmp_path / "a", shared) as a, serve(tmp_path / "b", shared) as b:
        wait_for(lambda: [_leads(a), _leads(b)].count(True) == 1, timeout=20)
        leader, other = (a, b) if _leads(a) else (b, a)
        polls = upstream.account("tok-a").usage_polls
        time.sleep(2.0)  # one poller: about one poll per account per 0.5 s, not two
        assert 2 <= upstream.account("tok-a").usage_polls - polls <= 6
        assert not _leads(other)
        os.kill(leader.process.pid, signal.SIGKILL)
        leader.process.wait(timeout=10)
        took = wait_for(lambda: _leads(other), timeout=10)
        assert took < 6.0  # the lease (5 s) runs out, the other takes it
        polls = upstream.account("tok-a").usage_polls
        wait_for(lambda: upstream.account("tok-a").usage_polls > polls, timeout=5)


def _leads(served: Served) -> bool:
    with httpx.Client(base_url=served.base) as http:
        return bool(http.get("/ready").json()["replication"]["leader"])


def test_a_redis_restart_under_load_fails_no_request_and_the_replicas_converge(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    upstream, url = fake
    with Gate(("127.0.0.1", 6379)).running() as gate:
        through_gate = f"redis://127.0.0.1:{gate.port}/9"
        shared = f'database_url = "{database}"\n' + config(url, "sequential").replace(
            REDIS, through_gate
        )
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with serve(tmp_path / "a", shared) as a, serve(tmp_path / "b", shared) as b:
            wait_for(lambda: _sharing(a) == _sharing(b) == "ok", timeout=20)
            with Balancer([a, b]).load(clients=4) as balancer:
                time.sleep(0.5)
                gate.close()  # Redis goes away under load, and comes back
                wait_for(lambda: _sharing(a) == _sharing(b) == "down", timeout=10)
                time.sleep(1.0)
            assert balancer.failed == 0 and balancer.ok > 20
            upstream.account("tok-a").fail_next(rate_limited(600))  # learnt by b alone
            with httpx.Client(base_url=b.base, timeout=30) as http:
                assert http.post("/v1/responses", json=STREAM).status_code == 200
            assert _status(b, "alpha") == "rate_limited"
            time.sleep(0.5)
            assert _status(a, "alpha") == "active"
            gate.open()
            wait_for(lambda: _status(a, "alpha") == "rate_limited", timeout=15)
            assert _sharing(a) == _sharing(b) == "ok"


def _sharing(served: Served) -> str:
    with httpx.Client(base_url=served.base) as http:
        return str(http.get("/ready").json()["replication"]["state"])


def _status(served: Served, name: str) -> str:
    with httpx.Client(base_url=served.base) as http:
        pool = http.get("/quotapool/pool").json()["credentials"]
    return str(next(c["status"] for c in pool if c["name"] == name))
