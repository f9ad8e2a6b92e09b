"""One client request's side of the data plane: where its answer goes, in which API, and what
the log keeps of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from quotapool import tracing
from quotapool.proxy.asgi import JSON, Headers, Send, send_body, start_stream
from quotapool.proxy.errors import Dialect, ErrorResponse
from quotapool.proxy.record import Record

_CLOSE = (b"connection", b"close")


class Exchange:
    """The client side of one request as it goes through the data plane: its API (`dialect`),
    its answer's way out (`send`), the headers every answer carries (`base`) and its log row
    (`record`). Its methods are the only writers of the answer's status, time to first byte
    and error; the request itself travels beside it, since routing changes it on the way
    (a profile's model, a continuation expanded, a credential's model map)."""

    __slots__ = ("base", "dialect", "now", "output", "record", "send")

    def __init__(
        self,
        dialect: Dialect,
        send: Send,
        record: Record,
        base: Headers,
        now: Callable[[], float],
    ) -> None:
        self.dialect = dialect
        self.send = send
        self.record = record
        self.base = base
        self.now = now
        self.output: list[Any] | None = None
        """The output items of a Responses answer collected as they stream, when quotapool
        keeps this answer's conversation (`conversations.kept_here`): the Codex backend's final
        event lacks them."""

    @property
    def answered(self) -> bool:
        """The client has its answer's start: nothing can fail over any more."""
        return self.record.ttfb_ms is not None

    def headers(self, extra: Iterable[tuple[bytes, bytes]] = ()) -> Headers:
        """A new list: the headers every answer carries, then `extra`."""
        return [*self.base, *extra]

    def elapsed_ms(self) -> float:
        return (self.now() - self.record.at) * 1000.0

    def ended(self, status: int, reason: str | None) -> None:
        """The request ended without (more of) an answer: a client that left, a bug."""
        self.record.status, self.record.error = status, reason

    def broke(self, reason: str | None) -> None:
        """Why the answer (or an attempt at one) failed; the status stays what was sent."""
        self.record.error = reason

    async def answer(
        self, status: int, body: bytes, headers: Headers, content_type: bytes | None = JSON
    ) -> None:
        """A whole answer, `headers` complete (see `headers`)."""
        self.record.status = status
        self.record.ttfb_ms = self.elapsed_ms()
        tracing.event("first byte")
        await send_body(self.send, status, body, headers, content_type)

    async def start_stream(self, headers: Headers) -> None:
        """The start of a 200 event stream; its events follow on `send`."""
        self.record.status = 200
        self.record.ttfb_ms = self.elapsed_ms()
        tracing.event("first byte")
        await start_stream(self.send, 200, headers)

    async def accept_socket(self, headers: Headers) -> None:
        """Accept a WebSocket upgrade, `headers` complete."""
        self.record.status = 101
        self.record.ttfb_ms = self.elapsed_ms()
        await self.send({"type": "websocket.accept", "headers": headers})

    async def relay_error(
        self, status: int, body: bytes, headers: Headers, reason: str | None = None
    ) -> None:
        """An upstream's error as it came (in the client's API), `headers` complete."""
        self.record.status = status
        if reason is not None:
            self.record.error = reason
        await send_body(self.send, status, body, headers, None)

    async def fail(self, response: ErrorResponse) -> None:
        """quotapool's own error; the connection stays open."""
        self.record.status, self.record.error = response.status, response.body.decode()
        await send_body(self.send, response.status, response.body, self.headers(response.headers))

    async def refuse(self, response: ErrorResponse, reason: str | None = None) -> None:
        """quotapool's own error that closes the connection (a client nobody admitted holds no
        slot after it, whatever it still sends); `reason` for the log, if not its message."""
        self.record.status = response.status
        self.record.error = reason or response.body.decode("utf-8", "replace")
        await send_refusal(self.send, self.base, response)


async def send_refusal(send: Send, base: Headers, response: ErrorResponse) -> None:
    """A refusal without a request of its own (a wrong path, a method, the door's checks);
    it closes the connection."""
    headers = base + list(response.headers)
    if _CLOSE not in headers:
        headers.append(_CLOSE)
    own_type = any(name == b"content-type" for name, _ in response.headers)
    await send_body(send, response.status, response.body, headers, None if own_type else JSON)
