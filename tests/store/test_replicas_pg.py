"""Replicas as on two machines: two `quotapool serve` processes with their own homes, sharing
the real PostgreSQL (request log, accounts, conversations) and the real Redis (the pool). One
is stopped, then killed, under load."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from quotapool.store.sql.db import make_engine
from quotapool.testing.fake_upstream import FakeUpstream
from tests.faults.process import Served, serve
from tests.pg import postgres_schema
from tests.store.test_replication import wait_for
from tests.store.test_workers import config

STREAM = {"model": "gpt-5.5", "input": "hi", "stream": True}


@pytest.fixture
def database() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


class Balancer:
    """What a load balancer does for clients: each request to the next replica that is up (a
    replica that refuses the connection is skipped); counts what the clients got."""

    def __init__(self, replicas: list[Served]) -> None:
        self.replicas = replicas
        self.turn = itertools.count()
        self.ok = self.failed = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def one(self, body: dict[str, object]) -> None:
        for _ in range(len(self.replicas)):
            served = self.replicas[next(self.turn) % len(self.replicas)]
            try:
                with httpx.Client(base_url=served.base, timeout=30) as http:
                    answer = http.post("/v1/responses", json=body)
                    complete = answer.status_code == 200 and b"response.completed" in answer.content
            except httpx.ConnectError:
                continue  # down: the next one
            except httpx.TransportError:
                complete = False  # cut while being served: the client sees a failure
            with self.lock:
                if complete:
                    self.ok += 1
                else:
                    self.failed += 1
            return

    def load(self, clients: int) -> list[threading.Thread]:
        def run() -> None:
            while not self.stop.is_set():
                self.one(STREAM)

        threads = [threading.Thread(target=run) for _ in range(clients)]
        for thread in threads:
            thread.start()
        return threads

    def finish(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for thread in threads:
            thread.join(timeout=30)


def logged(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            query = "SELECT count(*) FROM requests WHERE status = 200"
            return int(connection.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


def busy(served: Served) -> list[tuple[int, int]]:
    with httpx.Client(base_url=served.base) as http:
        pool = http.get("/quotapool/pool").json()
    return [(c["in_flight"], c["in_flight_elsewhere"]) for c in pool["credentials"]]


def test_a_replica_stopped_then_killed_under_load_loses_no_row_and_leaves_nothing_busy(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    upstream, url = fake
    for token in ("tok-a", "tok-b", "tok-c"):
        upstream.account(token).event_delay = 0.01  # streams of ~50 ms: always some in flight
    shared = f'database_url = "{database}"\n' + config(url, "round_robin")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with serve(tmp_path / "a", shared) as a:
        with serve(tmp_path / "b", shared) as b:
            wait_for(lambda: len(busy(a)) == 3 and len(busy(b)) == 3, timeout=20)
            balancer = Balancer([a, b])
            threads = balancer.load(clients=6)
            time.sleep(1.5)
            b.process.send_signal(signal.SIGTERM)  # a rolling restart: b drains and goes
            b.process.wait(timeout=30)
            time.sleep(1.0)  # a alone serves everything meanwhile
            balancer.finish(threads)
        assert balancer.failed == 0 and balancer.ok > 50
        wait_for(lambda: logged(database) == balancer.ok, timeout=10)  # every answer logged

        with serve(tmp_path / "b", shared) as b:  # b back, then killed with streams in flight
            wait_for(lambda: len(busy(b)) == 3, timeout=20)
            balancer = Balancer([a, b])
            threads = balancer.load(clients=6)
            time.sleep(1.0)
            os.kill(b.process.pid, signal.SIGKILL)
            b.process.wait(timeout=10)
            time.sleep(0.5)
            balancer.finish(threads)
        # What b had in flight stops counting on a within 2 s; a's own requests have all ended.
        wait_for(lambda: busy(a) == [(0, 0)] * 3, timeout=5)
        assert balancer.ok > 20  # the clients of the streams b was sending saw them cut
