"""How the data plane's answers end: the row logged before an answer's last part, a request
cut at shutdown, a body handed on already read."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from quotapool.domain.request import Route
from quotapool.proxy.asgi import Message, Receive, Send
from quotapool.proxy.errors import error
from quotapool.proxy.exchange import Exchange
from quotapool.proxy.record import Record
from quotapool.proxy.relay import error_event


class LoggedBeforeTheEnd:
    """A request's `send` that hands its row to the log (written ahead to the journal) just
    before the answer's last part leaves: a kill -9 right after a client has its whole answer
    can no longer lose its row. Whatever the request does after that is not logged.

    The answer's start waits for its first part of the body and leaves with it: a whole answer
    is journaled before any of it is sent, so a kill -9 cannot fall between its headers and its
    body (a balancer can ask another replica for an answer that has not begun, not for one cut
    after its headers)."""

    __slots__ = ("_finish", "_record", "_send", "_start", "done")

    def __init__(self, send: Send, record: Record, finish: Callable[[Record], None]) -> None:
        self._send = send
        self._record = record
        self._finish = finish
        self._start: Message | None = None
        self.done = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message  # (sent with the first part of the body)
            return
        if (
            not self.done
            and message["type"] == "http.response.body"
            and not message.get("more_body", False)
        ):
            self.done = True
            self._finish(self._record)
        if self._start is not None:
            start, self._start = self._start, None
            await self._send(start)
        await self._send(message)


SHUTDOWN_MESSAGE = "quotapool is shutting down; this request was cut. Send it again."


async def cut_at_shutdown(exchange: Exchange, route: Route) -> None:
    """End a request the shutdown cut: an error event if its stream started, else a 503."""
    reason = "cut at shutdown"
    with contextlib.suppress(Exception):
        if not exchange.answered:
            await exchange.refuse(error(exchange.dialect, 503, SHUTDOWN_MESSAGE), reason)
            return
        exchange.broke(reason)  # (before the last event leaves: it writes the row)
        if exchange.record.stream:
            await exchange.send(
                {"type": "http.response.body", "body": error_event(route, SHUTDOWN_MESSAGE)}
            )


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app handed a body already read: the body first, then what comes."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
