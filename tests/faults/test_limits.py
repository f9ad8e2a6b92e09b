"""No client can exhaust memory or connections: slow headers and bodies are cut (408), huge
headers refused (431), connections past the limit answered 503, WebSocket messages past
max_body_bytes closed with 1009 — and the server keeps answering /health throughout."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx

from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread
from tests.conftest import Harness, HarnessFactory
from tests.faults.process import serve


def address(h: Harness) -> tuple[str, int]:
    host, port = h.base.removeprefix("http://").split(":")
    return host, int(port)


@contextlib.contextmanager
def raw(h: Harness, data: bytes) -> Iterator[socket.socket]:
    sock = socket.create_connection(address(h))
    sock.settimeout(10)
    sock.sendall(data)
    try:
        yield sock
    finally:
        sock.close()


def answer(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_half_sent_headers_are_cut_and_health_still_answers(harness: HarnessFactory) -> None:
    h = harness(header_timeout_seconds=1)
    with contextlib.ExitStack() as stack:
        held = [
            stack.enter_context(raw(h, b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
            for _ in range(50)
        ]
        started = time.monotonic()
        assert httpx.get(f"{h.base}/health").status_code == 200
        answers = [answer(sock) for sock in held]
        took = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in a for a in answers)
    assert took < 5


def test_a_body_that_stops_arriving_is_a_408_and_logged(harness: HarnessFactory) -> None:
    h = harness(body_timeout_seconds=1)
    head = (
        b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b'content-length: 100\r\n\r\n{"model": '
    )
    with raw(h, head) as sock:
        response = answer(sock)
    assert response.startswith(b"HTTP/1.1 408") and b"stopped arriving" in response
    assert h.rows(1)[-1]["status"] == 408
    assert h.fake.seen == []


def test_huge_headers_are_refused(h: Harness) -> None:
    big = b"x-filler: " + b"a" * 100_000 + b"\r\n"
    for request in (
        b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big + b"\r\n",
        b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big[:90_000],  # never ends
        b"GET /v1/models?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ):
        with raw(h, request) as sock:
            response = answer(sock)
        assert response.startswith(b"HTTP/1.1 431"), response[:200]
    big_but_fine = {"x-filler": "a" * 30_000}
    assert httpx.get(f"{h.base}/health", headers=big_but_fine).status_code == 200
    assert h.fake.seen == []


def test_connections_past_the_limit_get_a_clear_503(harness: HarnessFactory) -> None:
    h = harness(max_connections=5)
    with contextlib.ExitStack() as stack:
        for _ in range(5):
            stack.enter_context(raw(h, b""))
        time.sleep(0.2)
        response = httpx.get(f"{h.base}/health")
        assert response.status_code == 503
        assert "limit of 5 connections" in response.json()["error"]["message"]
    time.sleep(0.2)
    assert httpx.get(f"{h.base}/health").status_code == 200


def test_websocket_messages_past_max_body_bytes_are_refused(harness: HarnessFactory) -> None:
    h = harness(max_body_bytes=10_000)

    async def scenario() -> int | None:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses") as ws,
        ):
            await ws.send_str("x" * 20_000)
            message = await ws.receive(timeout=5)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            return ws.close_code

    assert asyncio.run(scenario()) == 1009


def test_memory_is_returned_after_big_payloads(tmp_path: Path) -> None:
    """Bodies and WebSocket messages near max_body_bytes, several times: RSS comes back."""
    fake = FakeUpstream()
    fake.add("tok-a", name="alpha", account_id="acct-a")
    big = "x" * (30 * 1024 * 1024)
    with run_in_thread(fake) as upstream, serve(tmp_path, ACCOUNT.format(upstream=upstream)) as qp:
        before = qp.rss_mib()
        with httpx.Client(timeout=60) as http:
            for _ in range(3):
                body = {"model": "gpt-5.5", "input": big}
                assert http.post(f"{qp.base}/v1/responses", json=body).status_code == 200

        async def frames() -> None:
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    async with session.ws_connect(
                        f"{qp.base}/backend-api/codex/responses", max_msg_size=0
                    ) as ws:
                        await ws.send_str(
                            '{"type":"response.create","model":"gpt-5.5","input":"' + big + '"}'
                        )
                        async for message in ws:
                            if '"response.completed"' in message.data:
                                break

        asyncio.run(frames())
        time.sleep(0.5)
        after = qp.rss_mib()
    print(f"\nRSS {before:.0f} MiB before, {after:.0f} MiB after 6 payloads of 30 MiB")
    assert after - before < 25


ACCOUNT = """
codex_base_url = "{upstream}/backend-api"
usage_poll_interval = 0
[[credentials]]
kind = "codex"
name = "alpha"
api_key = "tok-a"
account_id = "acct-a"
"""


def test_connections_past_the_file_descriptor_limit_get_503_not_silence(tmp_path: Path) -> None:
    def small_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    config = "max_connections = 512\nheader_timeout_seconds = 30\n"
    with serve(tmp_path, config, preexec=small_limit) as served, contextlib.ExitStack() as stack:
        host, port = served.base.removeprefix("http://").split(":")
        held = []
        for _ in range(300):  # more than the process could ever hold open
            sock = stack.enter_context(socket.create_connection((host, int(port)), timeout=10))
            held.append(sock)
        refused = 0
        for sock in held[96:]:
            sock.settimeout(5)
            answer = sock.recv(65536)
            refused += answer.startswith(b"HTTP/1.1 503")
        assert refused == len(held) - 96
        for sock in held:
            sock.close()
        assert httpx.get(f"{served.base}/health").status_code == 200
    assert "serving at most 96 connections, not max_connections = 512" in served.output
    assert "Too many open files" not in served.output
