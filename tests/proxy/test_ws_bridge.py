"""The WebSocket bridge in process, against scripted upstream sockets and a fake clock: failover
at the handshake, limits inside a session, refused frames and an upstream's close — decided
and checked without a socket or a sleep."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from quotapool.domain.state import Status
from quotapool.proxy.asgi import Message
from quotapool.proxy.dispatcher import Dispatcher
from quotapool.proxy.errors import Dialect
from quotapool.proxy.exchange import Exchange
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
                "response.failed",
                "error",
            ):
                return new[-1]
        raise AssertionError(f"no answer: {self.sent[-3:]}")


def bridged(
    sockets: Any, posts: Any = answer, rows: list[dict[str, Any]] | None = None
) -> tuple[Dispatcher, MockClient, WebSocketBridge]:
    d, _, _ = dispatcher(posts)
    client = MockClient(posts, sockets)
    d.attempts.client = client
    return d, client, WebSocketBridge(d, (rows if rows is not None else []).append)


def open_socket(bridge: WebSocketBridge, client: Client) -> asyncio.Task[None]:
    path = "/backend-api/codex/responses"
    scope: dict[str, Any] = {"type": "websocket", "path": path, "headers": []}
    record = Record("ws1", 0.0, "websocket", path)
    return asyncio.ensure_future(  # noqa: TID251 (awaited by the test)
        bridge(
            scope,
            client.receive,
            Exchange(Dialect.CODEX, client.send, record, [], lambda: 0.0),
            {},
            "client",
        )
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


async def test_a_turn_refused_for_a_limit_closes_the_socket_for_a_retry_elsewhere() -> None:
    """The account's limit error frame is not relayed (the Codex CLI fails its run on it): the
    account is out, the socket closed with 1012 (the CLI retries on a new socket), counted in
    flight until then and released once."""
    d, _, bridge = bridged(lambda _request: ScriptedSocket(spent))
    client = Client()
    session = open_socket(bridge, client)
    client.inbox.put_nowait({"type": "websocket.receive", "text": CREATE})
    await asyncio.wait_for(session, 5)
    assert client.frames() == []
    closes = [m for m in client.sent if m["type"] == "websocket.close"]
    assert closes == [{"type": "websocket.close", "code": 1012, "reason": "limit"}]
    alpha = d.pool.snapshot().state("alpha")
    assert alpha.status is Status.QUOTA_EXCEEDED and alpha.in_flight == 0


def failed_for_quota(frame: str) -> list[Any]:
    """A response that started, then failed for the account's quota."""
    del frame
    error = {"type": "usage_limit_reached", "message": "limit", "resets_in_seconds": 600}
    created = {"type": "response.created", "response": {"id": "resp_1"}}
    failed = {"type": "response.failed", "response": {"id": "resp_1", "error": error}}
    return [orjson.dumps(created).decode(), orjson.dumps(failed).decode()]


async def test_a_limit_inside_a_response_takes_the_account_out_and_keeps_the_socket_counted() -> (
    None
):
    d, _, bridge = bridged(lambda _request: ScriptedSocket(failed_for_quota))
    client = Client()
    session = open_socket(bridge, client)
    last = await client.turn(CREATE)
    assert last["type"] == "response.failed"  # the client sees it as it came
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


DRAW = orjson.dumps(
    {
        "type": "response.create",
        "model": "gpt-5.5",
        "input": "draw",
        "tools": [{"type": "image_generation"}],
    }
).decode()


async def test_an_image_turn_goes_over_http_on_the_sockets_account_and_logs_its_row() -> None:
    socket = ScriptedSocket(completed)
    rows: list[dict[str, Any]] = []
    d, upstream, bridge = bridged(lambda _request: socket, rows=rows)
    client = Client()
    session = open_socket(bridge, client)
    last = await client.turn(DRAW)
    assert last["type"] == "response.completed" and socket.sent == []  # not on the socket
    posted = [r for r in upstream.requests if r.body]  # (a handshake has none)
    assert len(posted) == 1 and account(posted[0]) == "alpha"  # the socket's account
    assert posted[0].json()["tools"] == [{"type": "image_generation"}]
    assert [f["type"] for f in client.frames()][:1] == ["response.created"]  # events as frames
    assert (await client.turn(CREATE))["type"] == "response.completed"  # the socket goes on
    assert len(socket.sent) == 1
    client.inbox.put_nowait({"type": "websocket.disconnect"})
    await session
    turn = next(r for r in rows if r["request_id"] == "ws1.1")
    assert turn["status"] == 200 and turn["output_tokens"] and turn["ttfb_ms"] is not None
    assert d.pool.snapshot().state("alpha").in_flight == 0


async def test_an_image_turn_whose_http_leg_breaks_is_an_error_frame_and_the_accounts_failure() -> (
    None
):
    def posts(_request: MockRequest) -> MockResponse:
        raise aiohttp.ClientConnectionError("connection reset")

    d, _, bridge = bridged(lambda _request: ScriptedSocket(completed), posts)
    client = Client()
    session = open_socket(bridge, client)
    last = await client.turn(DRAW)
    assert last["type"] == "error" and last["status"] == 502
    assert "unreachable" in last["error"]["message"]
    alpha = d.pool.snapshot().state("alpha")
    assert alpha.consecutive_failures == 1 and alpha.in_flight == 1  # the socket's own
    client.inbox.put_nowait({"type": "websocket.disconnect"})
    await session
    assert d.pool.snapshot().state("alpha").in_flight == 0
