"""In-flight accounting can never leak: a fault at every await point of an attempt, on every
route and relay, leaves every credential at 0 in flight, a log row for the request, and a
stream that started ends with an error event in the client's own dialect."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import Harness, HarnessFactory, codex_credentials
from tests.faults.faulty import FaultySession, Injected

# (name, path, body, credential kinds served) — each relay the dispatcher has.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("responses", "/v1/responses", {"model": "gpt-5.5", "input": "hi"}),
    ("responses-stream", "/v1/responses", {"model": "gpt-5.5", "input": "hi", "stream": True}),
    (
        "codex-stream",
        "/backend-api/codex/responses",
        {"model": "gpt-5.5", "input": "hi", "stream": True},
    ),
    (
        "chat-on-codex",
        "/v1/chat/completions",
        {"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "chat-stream-on-codex",
        "/v1/chat/completions",
        {"model": "gpt-5.5", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "chat-on-openai",
        "/v1/chat/completions",
        {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "chat-stream-on-openai",
        "/v1/chat/completions",
        {"model": "gpt-4.1", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "messages-stream",
        "/v1/messages",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ),
]
FAULTS: list[tuple[str, BaseException | bytes]] = [
    ("bug", Injected("injected")),
    ("transport", aiohttp.ClientPayloadError("injected")),
    ("timeout", TimeoutError()),
    (
        "odd-event",
        b'data: {"type":"response.output_text.delta","delta":{"not":"text"},"item_id":7}\n\n',
    ),
    ("garbage", b"data: \xff\xfe{{{\n\n"),
]
ERROR_EVENT = {
    "/v1/messages": b"event: error",
    "/v1/chat/completions": b'data: {"error"',
    "/v1/responses": b"event: error",
    "/backend-api/codex/responses": b"event: error",
}


@pytest.fixture
def faulty(harness: HarnessFactory) -> tuple[Harness, FaultySession]:
    creds = codex_credentials()
    for cred in creds:
        cred["models"] = ["gpt-5.5"]
    creds += [
        {"kind": "openai", "name": "openai-key", "api_key": "sk-openai", "models": ["gpt-4.1"]},
        {
            "kind": "anthropic",
            "name": "anthropic-key",
            "api_key": "sk-ant",
            "models": ["claude-sonnet-4-5"],
        },
    ]
    h = harness(credentials=creds)
    session = FaultySession(h.qp.dispatcher.attempts.client)
    h.qp.dispatcher.attempts.client = session  # type: ignore[assignment]
    return h, session


@pytest.mark.parametrize("fault_name,fault", FAULTS, ids=[f[0] for f in FAULTS])
@pytest.mark.parametrize("name,path,body", CASES, ids=[c[0] for c in CASES])
def test_a_fault_at_every_await_point_leaks_nothing(
    faulty: tuple[Harness, FaultySession],
    name: str,
    path: str,
    body: dict[str, Any],
    fault_name: str,
    fault: BaseException | bytes,
) -> None:
    h, session = faulty
    sent = 0
    with h.http() as client:
        at = 1
        while True:
            session.arm(at, fault)
            response = client.post(path, json=body)
            sent += 1
            points = session.points
            in_flight = {c.name: h.state(c.id).in_flight for c in h.qp.pool.snapshot().credentials}
            assert set(in_flight.values()) == {0}, f"fault at await {at}: {in_flight}"
            assert response.headers["x-quotapool-request-id"]
            if body.get("stream") and response.status_code == 200:
                content = response.content
                complete = any(
                    m in content for m in (b"response.completed", b"[DONE]", b"message_stop")
                )
                assert complete or ERROR_EVENT[path] in content, (at, content[-300:])
            else:
                assert response.headers["content-type"].startswith("application/json")
                response.json()
            if at > points:  # the fault came after the last await: every point was covered
                break
            at += 1
    rows = h.rows(sent)
    assert len(rows) == sent
    assert all(h.state(c.id).in_flight == 0 for c in h.qp.pool.snapshot().credentials)


def test_a_websocket_client_gone_before_its_upgrade_is_accepted(h: Harness) -> None:
    """The client hangs up while quotapool is still opening the upstream socket."""
    import socket
    import time

    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).latency = 0.5
    host, port = h.base.removeprefix("http://").split(":")
    for _ in range(5):
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(
                b"GET /backend-api/codex/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            time.sleep(0.1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(h.state(c.id).in_flight == 0 for c in h.qp.pool.snapshot().credentials):
            break
        time.sleep(0.05)
    assert {c.name: h.state(c.id).in_flight for c in h.qp.pool.snapshot().credentials} == {
        c.name: 0 for c in h.qp.pool.snapshot().credentials
    }
    assert len(h.rows(5)) == 5


def test_a_websocket_client_vanishing_mid_turn_leaks_nothing(h: Harness) -> None:
    """The client's socket dies (no close frame) while the upstream is still streaming."""
    import asyncio
    import json
    import time

    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).event_delay = 0.2

    async def vanish() -> None:
        session = aiohttp.ClientSession()
        socket = await session.ws_connect(f"{h.base}/backend-api/codex/responses")
        await socket.send_str(
            json.dumps({"type": "response.create", "model": "gpt-5.5", "input": "hi"})
        )
        await socket.receive(timeout=5)  # the turn is under way
        transport = socket._response.connection.transport  # type: ignore[union-attr]
        transport.abort()  # gone without a close frame
        await session.close()

    for _ in range(3):
        asyncio.run(vanish())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(h.state(c.id).in_flight == 0 for c in h.qp.pool.snapshot().credentials):
            break
        time.sleep(0.1)
    assert [h.state(c.id).in_flight for c in h.qp.pool.snapshot().credentials] == [0] * 5
    rows = h.rows(6)  # each socket's row, and its turn's, cut (499)
    assert sorted(r["status"] for r in rows) == [101, 101, 101, 499, 499, 499]
