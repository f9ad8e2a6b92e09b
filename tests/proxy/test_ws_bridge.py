"""The WebSocket bridge in process, against scripted upstream sockets and a fake clock: failover
at the handshake, limits inside a session, refused frames and an upstream's close — decided
and checked without a socket or a sleep."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from quotapool.domain.state import Status
from quotapool.proxy.asgi import Message
from quotapool.proxy.dispatcher import Dispatcher
from quotapool.proxy.record import Record
from quotapool.proxy.ws import WebSocketBridge
from quotapool.testing.mock_upstream import (
    CLOSE,
    MockClient,
    MockRequest,
    MockResponse,
    ScriptedSocket,
)
from tests.proxy.test_dispatcher import account, answer, dispatcher

CREATE = orjson.dumps({"type": "response.create", "model": "gpt-5.5", "input": "hi"}).decode()


def completed(frame: str) -> list[Any]:
    """What an account's socket answers to a turn: created, a delta, completed."""
    del frame
    return [
        orjson.dumps(event).decode()
        for event in (
            {"type": "response.created", "response": {"id": "resp_1"}},
            {"type": "response.output_text.delta", "delta": "Hi"},
            {"type": "response.completed", "response": {"id": "resp_1", "output": []}},
        )
    ]


def spent(frame: str) -> list[Any]:
    """An account whose quota ran out: the turn is answered with a limit error."""
    del frame
    error = {"type": "usage_limit_reached", "message": "limit", "resets_in_seconds": 600}
    return [orjson.dumps({"type": "error", "status": 429, "error": error}).decode()]


class Client:
    """The client side of one socket: frames in, everything the bridge sends kept."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self.inbox.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> Message:
        return await self.inbox.get()

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def frames(self) -> list[dict[str, Any]]:
        texts = [m["text"] for m in self.sent if m["type"] == "websocket.send" and "text" in m]
        return [orjson.loads(text) for text in texts]

    async def turn(self, text: str | None = None, data: bytes | None = None) -> dict[str, Any]:
        """Send one frame; the last event of its answer."""
        before = len(self.frames())
        frame = {"text": text} if data is None else {"bytes": data}
        self.inbox.put_nowait({"type": "websocket.receive", **frame})
        for _ in range(1000):
            await asyncio.sleep(0)
            if (new := self.frames()[before:]) and new[-1]["type"] in (
                "response.completed",
                "error",
            ):
                return new[-1]
        raise AssertionError(f"no answer: {self.sent[-3:]}")


def bridged(sockets: Any) -> tuple[Dispatcher, MockClient, WebSocketBridge]:
    d, _, _ = dispatcher(answer)
    client = MockClient(answer, sockets)
    d.attempts.client = client
    return d, client, WebSocketBridge(d)


def open_socket(bridge: WebSocketBridge, client: Client) -> asyncio.Task[None]:
    path = "/backend-api/codex/responses"
    scope: dict[str, Any] = {"type": "websocket", "path": path, "headers": []}
    record = Record("ws1", 0.0, "websocket", path)
    return asyncio.ensure_future(  # noqa: TID251 (awaited by the test)
        bridge(scope, client.receive, client.send, {}, "client", record, [])
    )


async def test_a_handshake_refused_for_quota_moves_the_socket_before_the_upgrade() -> None:
    def sockets(request: MockRequest) -> ScriptedSocket | MockResponse:
        if account(request) == "alpha":
            return MockResponse(429, headers={"retry-after": "600"})
        return ScriptedSocket(completed)

    d, upstream, bridge = bridged(sockets)
    client = Client()
    session = open_socket(bridge, client)
    assert (await client.turn(CREATE))["type"] == "response.completed"
    accepted = next(m for m in client.sent if m["type"] == "websocket.accept")
    route = dict(accepted["headers"])[b"x-quotapool-route"].decode()
    assert "credential=bravo" in route
    assert [account(r) for r in upstream.requests] == ["alpha", "bravo"]
    assert d.pool.snapshot().state("alpha").status is Status.RATE_LIMITED
    client.inbox.put_nowait({"type": "websocket.disconnect"})
    await session


async def test_a_limit_inside_the_session_takes_the_account_out_and_keeps_the_socket_counted() -> (
    None
):
    d, _, bridge = bridged(lambda _request: ScriptedSocket(spent))
    client = Client()
    session = open_socket(bridge, client)
    last = await client.turn(CREATE)
    assert last["type"] == "error" and last["status"] == 429  # the client sees it as it came
    alpha = d.pool.snapshot().state("alpha")
    assert alpha.status is Status.QUOTA_EXCEEDED and alpha.in_flight == 1  # still open on it
    client.inbox.put_nowait({"type": "websocket.disconnect"})
    await session
    assert d.pool.snapshot().state("alpha").in_flight == 0


async def test_binary_frames_are_refused_and_never_reach_the_account() -> None:
    socket = ScriptedSocket(completed)
    _, _, bridge = bridged(lambda _request: socket)
    client = Client()
    session = open_socket(bridge, client)
    refused = await client.turn(data=orjson.dumps({"type": "response.create"}))
    assert refused["status"] == 400 and "text frames" in refused["error"]["message"]
    assert socket.sent == []
    assert (await client.turn(CREATE))["type"] == "response.completed"
    client.inbox.put_nowait({"type": "websocket.disconnect"})
    await session


async def test_the_upstream_closing_closes_the_clients_socket_with_its_code() -> None:
    _, _, bridge = bridged(
        lambda _request: ScriptedSocket(lambda f: [*completed(f), CLOSE], close_with=1011)
    )
    client = Client()
    session = open_socket(bridge, client)
    assert (await client.turn(CREATE))["type"] == "response.completed"
    await asyncio.wait_for(session, 5)
    assert client.sent[-1] == {"type": "websocket.close", "code": 1011}
