"""`$QUOTAPOOL_HOME/server.json`: where the running server listens, and a token that lets the
CLI on this machine use its admin API (so `accounts list` and `accounts pause` see and change
what the server holds, quotapool.toml's credentials included).

The file is 0600 in the 0700 home, beside the secret key: whoever can read it could read that
key too. It is removed when the server stops; one left by a killed server names a dead process
and is ignored. Replicas (`redis_url`) may share a home (docker-compose.yml's volume): each host
then has its own, `server.<host>.json`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from quotapool.secrets import private_file, private_home

RUN_FILE_NAME = "server.json"


@dataclass(frozen=True, slots=True)
class Running:
    url: str
    token: str
    pid: int


def run_file(home: Path, replicas: bool = False) -> Path:
    """Where the run file is: one per host when replicas may share `home`."""
    return home / (f"server.{socket.gethostname()}.json" if replicas else RUN_FILE_NAME)


def read(home: Path, replicas: bool = False) -> Running | None:
    """The server running from `home` on this host, if one is."""
    try:
        data = orjson.loads(run_file(home, replicas).read_bytes())
        running = Running(str(data["url"]), str(data["token"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(running.pid, 0)
    except ProcessLookupError:
        return None  # left behind by a server that was killed
    except PermissionError:
        pass  # alive, someone else's
    return running


@contextlib.contextmanager
def announced(home: Path, url: str, replicas: bool = False) -> Iterator[str]:
    """Write the run file for the server at `url` while it runs; yields its CLI token."""
    token = "qpl-" + secrets.token_urlsafe(32)
    path = run_file(private_home(home), replicas)
    private_file(path)
    path.write_bytes(orjson.dumps({"url": url, "token": token, "pid": os.getpid()}))
    try:
        yield token
    finally:
        with contextlib.suppress(OSError):
            if (current := read(home, replicas)) is None or current.token == token:
                path.unlink()
