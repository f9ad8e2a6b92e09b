"""Under load through the server: a 10 s database outage loses no request-log row, and the
requests being served do not wait for the database."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from quotapool.store.sql.db import make_engine
from quotapool.store.sql.schema import requests
from tests.conftest import HarnessFactory
from tests.faults.gate import Gate
from tests.pg import postgres_schema

OUTAGE_SECONDS = 10.0


class Load:
    """Clients sending requests back to back; latencies kept by phase."""

    def __init__(self, base: str, clients: int = 4) -> None:
        self.base = base
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.failures = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, n: int) -> None:
        body = {"model": "gpt-5.5", "input": "hi"}
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                response = client.post("/v1/responses", json=body)
                self.latencies[self.phase].append(time.perf_counter() - start)
                self.failures += response.status_code != 200

    @contextlib.contextmanager
    def running(self) -> Iterator[Load]:
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(30)

    @property
    def sent(self) -> int:
        return sum(map(len, self.latencies.values()))

    def p99_ms(self, phase: str) -> float:
        return statistics.quantiles(self.latencies[phase], n=100)[98] * 1000


def run_outage(h_base: str, out: contextlib.AbstractContextManager[object]) -> Load:
    load = Load(h_base)
    with load.running():
        time.sleep(2)
        load.phase = "during"
        with out:
            time.sleep(OUTAGE_SECONDS)
        load.phase = "after"
        time.sleep(2)
    return load


def logged(url: str, expected: int, timeout: float = 30) -> int:
    engine = make_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                n = int(connection.execute(select(func.count()).select_from(requests)).scalar_one())
            if n >= expected or time.monotonic() > deadline:
                return n
            time.sleep(0.2)
    finally:
        engine.dispose()


def report(name: str, load: Load, rows: int) -> None:
    print(
        f"\n{name}: {load.sent} requests, {rows} rows, lost {load.sent - rows}; p99 before "
        f"{load.p99_ms('before'):.1f} ms, during {load.p99_ms('during'):.1f} ms, "
        f"after {load.p99_ms('after'):.1f} ms"
    )


HEALTHY = {
    "state": "ok",
    "queued": 0,
    "journal_pending": False,
    "lost": 0,
    "held": 0,
    "journal_failing": False,
}


def check(load: Load, rows: int, base: str) -> None:
    assert load.failures == 0
    assert rows == load.sent, f"{load.sent - rows} rows lost"
    for _ in range(100):  # the writer notes it is back at its next flush
        ready = httpx.get(f"{base}/ready").json()
        if ready["requests"] == HEALTHY:
            break
        time.sleep(0.1)
    assert ready["requests"] == HEALTHY
    # Serving never waits for the database: the tail during the outage stays that of a proxy.
    assert load.p99_ms("during") < max(5 * load.p99_ms("before"), 100.0)


@pytest.mark.timeout(120)
def test_a_postgresql_restart_loses_no_row(harness: HarnessFactory) -> None:
    with postgres_schema() as url, Gate(("127.0.0.1", 5432)).running() as gate:
        h = harness(database_url=url.replace("127.0.0.1:5432", f"127.0.0.1:{gate.port}"))

        @contextlib.contextmanager
        def restart() -> Iterator[None]:
            gate.close()
            yield
            gate.open()

        load = run_outage(h.base, restart())
        rows = logged(url, load.sent)
        report("PostgreSQL down 10 s", load, rows)
        check(load, rows, h.base)


@pytest.mark.timeout(120)
def test_a_sqlite_writer_lock_held_10_s_loses_no_row(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    h = harness(database_url=url)

    @contextlib.contextmanager
    def locked() -> Iterator[None]:
        holder = make_engine(url)
        with holder.connect() as connection:
            connection.execute(text("BEGIN EXCLUSIVE"))
            yield
            connection.rollback()
        holder.dispose()

    load = run_outage(h.base, locked())
    rows = logged(url, load.sent)
    report("SQLite locked 10 s", load, rows)
    check(load, rows, h.base)
