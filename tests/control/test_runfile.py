"""The run file: where the server is, for the CLI on this machine; private, and gone after."""

from __future__ import annotations

import contextlib
import socket
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from quotapool.control.runfile import RUN_FILE_NAME, announced, read


def test_the_run_file_is_private_while_the_server_runs_and_gone_after(tmp_path: Path) -> None:
    with announced(tmp_path, "http://127.0.0.1:9") as token:
        path = tmp_path / RUN_FILE_NAME
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        running = read(tmp_path)
        assert running is not None and running.token == token and running.url.endswith(":9")
    assert not path.exists() and read(tmp_path) is None


def test_a_run_file_left_by_a_killed_server_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = {"url": "http://127.0.0.1:9", "token": "qpl-x", "pid": int(dead.stdout)}
    (tmp_path / RUN_FILE_NAME).write_bytes(orjson.dumps(data))
    assert read(tmp_path) is None
    (tmp_path / RUN_FILE_NAME).write_text("{not json")
    assert read(tmp_path) is None


def test_replicas_sharing_a_home_each_have_their_own_run_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker-compose.yml's replicas share one volume: the CLI in each container finds its own
    server (before, the last one started took the file, and the other's CLI was refused), and
    a replica that stops leaves the other's."""
    monkeypatch.setattr(socket, "gethostname", lambda: "quotapool-1")
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(announced(tmp_path, "http://127.0.0.1:8410", replicas=True))
        monkeypatch.setattr(socket, "gethostname", lambda: "quotapool-2")
        with announced(tmp_path, "http://127.0.0.1:8410", replicas=True) as second:
            running = read(tmp_path, replicas=True)
            assert running is not None and running.token == second
        assert read(tmp_path, replicas=True) is None  # quotapool-2's is gone with it
        monkeypatch.setattr(socket, "gethostname", lambda: "quotapool-1")
        running = read(tmp_path, replicas=True)
        assert running is not None and running.token == first
