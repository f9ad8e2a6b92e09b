"""A real 80-column terminal: tmux, whose pane wraps what is wider as a terminal does. A capture
joins the rows the terminal wrapped (`-J`), so a line longer than the pane is one the terminal
had to wrap."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WIDTH, HEIGHT = 80, 24
BIN = str(Path(sys.executable).parent)


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


class Pane:
    def __init__(self, session: str) -> None:
        self.session = session

    def screen(self) -> list[str]:
        """Everything the pane showed, scrollback included; wrapped rows joined."""
        text = _tmux("capture-pane", "-p", "-J", "-S", "-", "-t", self.session)
        return [line.rstrip() for line in text.rstrip("\n").splitlines()]

    def wait_for(self, text: str, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if any(text in line for line in lines):
                return lines
            assert time.monotonic() < deadline, "\n".join(lines)
            time.sleep(0.1)


@contextmanager
def terminal(command: str, env: dict[str, str]) -> Iterator[Pane]:
    """`command` running in an 80×24 terminal (with the venv's commands on its PATH)."""
    session = f"qp-{uuid.uuid4().hex[:8]}"
    environment = {**env, "PATH": f"{BIN}:{os.environ['PATH']}"}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in environment.items())
    shell = f"export {exports}; {command}; echo '[exited]'; sleep 600"
    _tmux(
        "new-session", "-d", "-s", session, "-x", str(WIDTH), "-y", str(HEIGHT),
        "bash", "--norc", "-c", shell,
    )  # fmt: skip
    try:
        yield Pane(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def run(command: str, env: dict[str, str]) -> list[str]:
    """What `command` showed in the terminal, once it has exited."""
    with terminal(command, env) as pane:
        lines = pane.wait_for("[exited]")
    return lines[: lines.index("[exited]")]
