"""`quotapool serve` as a real process (for signals and memory), on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base: str
    process: subprocess.Popen[bytes]
    output: str = ""

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


@contextlib.contextmanager
def serve(
    tmp_path: Path,
    config: str,
    *args: str,
    port: int = 0,
    preexec: Callable[[], None] | None = None,
) -> Iterator[Served]:
    """Run `quotapool serve` with `config` (TOML) and `args` on `port` (a free one by default)
    until /health answers. `preexec` runs in the child before it starts (its limits)."""
    port = port or free_port()
    path = tmp_path / "quotapool.toml"
    path.write_text(f"port = {port}\n" + config)
    env = {**os.environ, "QUOTAPOOL_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [sys.executable, "-m", "quotapool.cli.main", "serve", "--config", str(path), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=preexec,
    )
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{served.base}/health")
                break
            time.sleep(0.05)
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            served.output = process.communicate(timeout=30)[0].decode()
        except subprocess.TimeoutExpired:
            process.kill()
            served.output = process.communicate()[0].decode()
            raise AssertionError(  # what it said is the way to the cause
                "the server did not stop within 30 s of SIGTERM; its last output:\n"
                + served.output[-4000:]
            ) from None
