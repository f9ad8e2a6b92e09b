"""A full disk loses no request-log row while memory holds them: with `QUOTAPOOL_HOME` on a small
tmpfs filled to the last byte, the database and the journal both refuse rows; they wait in
memory (bounded), `/ready` says so, one log line says so, and every row is stored once space
comes back. Past the memory bound, rows are counted as lost, and reported."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from quotapool.store.batch import BatchWriter
from quotapool.store.sql.db import make_engine, migrate
from tests.conftest import Harness, HarnessFactory
from tests.faults.test_log_outage import HEALTHY


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """`tmp_path` as a 4 MB tmpfs (torn down after the harness that lives on it)."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(tmp_path)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield tmp_path
    finally:
        subprocess.run(["umount", "-l", str(tmp_path)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`; the file that holds them (remove it to free them)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as file:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while file.write(b"\0" * size):
                    pass
    with pytest.raises(OSError) as full:
        (disk / "probe").write_bytes(b"x" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


def ready(h: Harness) -> dict[str, object]:
    with h.http() as http:
        detail: dict[str, object] = http.get("/ready").json()["requests"]
    return detail


def test_a_full_disk_loses_no_row_and_says_so(
    small_disk: Path, harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(metrics_public=True)
    body = {"model": "gpt-5.5", "input": "hi"}

    def send(_n: int) -> int:
        with httpx.Client(base_url=h.base, timeout=30) as http:
            return http.post("/v1/responses", json=body).status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(send, range(20))) == {200}
    assert len(h.rows(20)) == 20
    filler = fill(small_disk)
    with (
        caplog.at_level(logging.WARNING, logger="quotapool.store.batch"),
        ThreadPoolExecutor(4) as pool,
    ):
        assert set(pool.map(send, range(400))) == {200}  # the clients never notice
        deadline = time.monotonic() + 10
        while ready(h)["state"] != "holding" and time.monotonic() < deadline:
            time.sleep(0.1)
        held = ready(h)
        assert held["state"] == "holding" and held["journal_failing"] is True
        # (a few rows fit in the journal's last page before it fails)
        assert int(held["held"]) > 300 and held["lost"] == 0  # type: ignore[call-overload]
        with h.http() as http:
            metrics = http.get("/metrics").text
        assert 'quotapool_log_held_rows{table="requests"}' in metrics
        filler.unlink()  # space comes back
        deadline = time.monotonic() + 20
        while ready(h)["state"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert send(0) == 200  # written ahead again: the journal works
        deadline = time.monotonic() + 5
        while ready(h) != HEALTHY and time.monotonic() < deadline:
            time.sleep(0.1)
    assert ready(h) == HEALTHY
    assert len(h.rows(421, timeout=10)) == 421
    said = [r.getMessage() for r in caplog.records if r.name == "quotapool.store.batch"]
    assert sum("journal cannot be written" in m for m in said) == 1  # one line, not one a row
    assert sum("cannot take rows" in m for m in said) == 1
    assert sum("journal can be written again" in m for m in said) == 1
    assert len(said) <= 6, said


def test_past_the_memory_bound_rows_are_counted_as_lost(small_disk: Path) -> None:
    engine = make_engine(f"sqlite:///{small_disk / 'log.db'}")
    migrate(engine)
    filler = fill(small_disk)
    writer = BatchWriter(
        engine, journal=small_disk / "journal" / "requests.jsonl", max_held_bytes=20_000
    )
    rows = [
        {
            "request_id": f"r{n}",
            "at": 1.0,
            "route": "responses",
            "path": "/v1/responses",
            "status": 200,
            "attempts": 1,
            "error": "x" * 100,
        }
        for n in range(200)
    ]
    writer._write(rows)  # the database is full, and so is the journal's disk
    health = writer.health()
    assert health.state == "holding" and health.journal_failing
    assert 0 < health.held < 200 and health.lost == 200 - health.held
    os.unlink(filler)
    writer._retry(at_start=True)
    assert writer.health().held == 0 and writer.health().state == "ok"
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT count(*) FROM requests").scalar_one()
    assert stored == 200 - health.lost
    engine.dispose()


def test_serve_on_a_full_disk_says_so_in_one_line(small_disk: Path) -> None:
    env = {**os.environ, "QUOTAPOOL_HOME": str(small_disk)}
    command = [str(Path(sys.executable).parent / "quotapool"), "serve", "--port", "0"]
    subprocess.run([*command[:1], "keys", "list"], env=env, check=True, capture_output=True)
    fill(small_disk)
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 1
    errors = [line for line in started.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"the disk that holds {small_disk} is full" in errors[0]
    assert "Traceback" not in started.stdout + started.stderr
