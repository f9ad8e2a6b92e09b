"""`$QUOTAPOOL_HOME/server.json`: where the running server listens, and a token that lets the
CLI on this machine use its admin API (so `accounts list` and `accounts pause` see and change
what the server holds, quotapool.toml's credentials included).

The file is 0600 in the 0700 home, beside the secret key: whoever can read it could read that
key too. It is removed when the server stops; one left by a killed server names a dead process
and is ignored.
"""

from __future__ import annotations

import contextlib
import os
import secrets
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


def read(home: Path) -> Running | None:
    """The server running from `home`, if one is."""
    try:
        data = orjson.loads((home / RUN_FILE_NAME).read_bytes())
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
def announced(home: Path, url: str) -> Iterator[str]:
    """Write the run file for the server at `url` while it runs; yields its CLI token."""
    token = "qpl-" + secrets.token_urlsafe(32)
    path = private_home(home) / RUN_FILE_NAME
    private_file(path)
    path.write_bytes(orjson.dumps({"url": url, "token": token, "pid": os.getpid()}))
    try:
        yield token
    finally:
        with contextlib.suppress(OSError):
            if (current := read(home)) is None or current.token == token:
                path.unlink()
