"""Another machine on the LAN, made on this one: a network namespace joined to the host by a
veth pair, so a browser or client inside it reaches quotapool from an address that is not
loopback (what a colleague's laptop does) while no packet leaves the machine. Needs root (the
test command runs as root, as CI does)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Lan:
    namespace: str
    server_address: str
    """The host's side: what a LAN client types to reach quotapool."""
    client_address: str

    def run(self, *command: str) -> list[str]:
        """`command` as run on the other machine."""
        return ["ip", "netns", "exec", self.namespace, *command]

    def wrapper(self, directory: Path, program: str) -> Path:
        """An executable that runs `program` on the other machine (for Playwright's launch)."""
        path = directory / f"lan-{Path(program).name}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.namespace} {program} "$@"\n')
        path.chmod(0o755)
        return path


@contextmanager
def lan() -> Iterator[Lan]:
    assert os.geteuid() == 0, "the LAN tests make a network namespace: run them as root"
    tag = uuid.uuid4().hex[:6]
    namespace, host_end, far_end = f"qp-{tag}", f"qph{tag}", f"qpn{tag}"
    third = int(tag[:2], 16)  # another subnet for each run, so parallel runs never collide
    server, client = f"10.213.{third}.1", f"10.213.{third}.2"

    def sh(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True)

    sh("ip", "netns", "add", namespace)
    try:
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", far_end)
        sh("ip", "link", "set", far_end, "netns", namespace)
        sh("ip", "addr", "add", f"{server}/30", "dev", host_end)
        sh("ip", "link", "set", host_end, "up")
        inside = ["ip", "netns", "exec", namespace]
        sh(*inside, "ip", "addr", "add", f"{client}/30", "dev", far_end)
        sh(*inside, "ip", "link", "set", far_end, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        yield Lan(namespace, server, client)
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
