"""Real proxy servers from Debian's packages (installed by scripts/test): tinyproxy (HTTP
CONNECT) and microsocks (SOCKS5), each with a password.

Each makes its outgoing connections from its own loopback address (127.0.0.2, 127.0.0.3), so
the fake upstream tells by a request's source address which way it came: through which proxy,
or directly (127.0.0.1)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.process import free_port

HTTP_PROXY_OUT = "127.0.0.2"
SOCKS_PROXY_OUT = "127.0.0.3"
DIRECT_OUT = "127.0.0.1"
HTTP_PASSWORD = "tiny-proxy-password-4f1c"
SOCKS_PASSWORD = "micro-socks-password-9d2e"


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if found is None:
        pytest.fail(f"{name} is missing: run ./scripts/test, which installs it")
    return found


def _listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the proxy exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the proxy did not listen on {port} within {timeout} s")


@contextlib.contextmanager
def _running(command: list[str], port: int) -> Iterator[None]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _listening(port, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def http_proxy(folder: Path) -> Iterator[str]:
    """tinyproxy with basic auth; yields its URL (with the password)."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nBind {HTTP_PROXY_OUT}\nTimeout 120\nMaxClients 200\n"
        f'LogLevel Connect\nLogFile "{folder / "tinyproxy.log"}"\n'
        f'PidFile "{folder / "tinyproxy.pid"}"\nBasicAuth ann {HTTP_PASSWORD}\n'
        "DisableViaHeader Yes\n"
    )
    with _running([_binary("tinyproxy"), "-d", "-c", str(config)], port):
        yield f"http://ann:{HTTP_PASSWORD}@127.0.0.1:{port}"


@contextlib.contextmanager
def socks_proxy() -> Iterator[str]:
    """microsocks with a user and password; yields its socks5h:// URL."""
    port = free_port()
    command = [_binary("microsocks"), "-i", "127.0.0.1", "-p", str(port), "-b", SOCKS_PROXY_OUT]
    with _running([*command, "-u", "bob", "-P", SOCKS_PASSWORD], port):
        yield f"socks5h://bob:{SOCKS_PASSWORD}@127.0.0.1:{port}"


def dead_proxy() -> str:
    """A proxy URL nothing listens on."""
    return f"socks5h://bob:{SOCKS_PASSWORD}@127.0.0.1:{free_port()}"
