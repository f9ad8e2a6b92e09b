"""Relaying an upstream event stream to the client: as it arrives, translated, or collected."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson

from quotapool.domain.request import Route
from quotapool.net.client import NETWORK_ERRORS, Body, BrokenAnswer
from quotapool.proxy.asgi import Headers
from quotapool.proxy.exchange import Exchange
from quotapool.proxy.learn import EventLearner
from quotapool.translate import StreamAdapter
from quotapool.upstream.signals import StreamFailure, Verdict, event_failure
from quotapool.upstream.sse import KEEPALIVE, MAX_EVENT_BYTES, EventTooLarge, SSEFramer, event_data
from quotapool.upstream.usage import parse_usage

TRANSPORT_ERRORS: tuple[type[Exception], ...] = (*NETWORK_ERRORS, EventTooLarge, BrokenAnswer)
"""How an upstream call fails: before the client's first byte the pool fails over (and the
credential's breaker counts it), after it the stream ends with an error event."""
MAX_ERROR_BYTES = 1024 * 1024
"""The most of an upstream's error body that is read (errors are a few hundred bytes)."""
MAX_HEADER_BYTES = 64 * 1024
"""Upstream response headers past this are a broken upstream's, not relayed."""


def check_headers(raw_headers: tuple[tuple[bytes, bytes], ...]) -> None:
    """Refuse an answer whose headers exceed `MAX_HEADER_BYTES` (they would be relayed)."""
    if sum(len(name) + len(value) for name, value in raw_headers) > MAX_HEADER_BYTES:
        raise BrokenAnswer(f"the upstream's headers exceed {MAX_HEADER_BYTES} bytes")


_DONE = b"data: [DONE]\n\n"


class _Tick:
    """The upstream has been silent for a keep-alive interval."""


TICK = _Tick()


@dataclass(frozen=True, slots=True)
class EventBounds:
    """How large an upstream event may be, and how long each may take to arrive whole (a
    timeout per read lets an upstream dripping a byte at a time hold a request for ever)."""

    max_bytes: int = MAX_EVENT_BYTES
    first_seconds: float = 120.0
    """From the request to its first whole event."""
    between_seconds: float = 600.0
    """From one whole event to the next."""


class UpstreamEvents:
    """Whole SSE events from an upstream body; `TICK` after each silent keep-alive interval.
    An event past `bounds` raises `EventTooLarge` or `TimeoutError` (see TRANSPORT_ERRORS)."""

    def __init__(
        self, content: Body, keepalive: float, bounds: EventBounds = EventBounds()
    ) -> None:
        self._content = content
        self._keepalive = keepalive
        self._framer = SSEFramer(bounds.max_bytes)
        self._ready: list[bytes] = []
        self._ended = False
        self._bounds = bounds
        self._due: float | None = None
        """When the next whole event must have arrived (loop time)."""

    async def next(self) -> bytes | _Tick | None:
        """The next raw event, `TICK`, or None at the end of the stream."""
        while not self._ready:
            if self._ended:
                return None
            now = asyncio.get_running_loop().time()
            if self._due is None:
                self._due = now + self._bounds.first_seconds
            elif now > self._due:
                raise TimeoutError("the upstream sent no whole event in time")
            try:
                async with asyncio.timeout(min(self._keepalive, self._due - now)) as deadline:
                    chunk = await self._content.readany()
            except TimeoutError:
                if deadline.expired():
                    if asyncio.get_running_loop().time() >= self._due:
                        raise TimeoutError("the upstream sent no whole event in time") from None
                    return TICK
                raise
            if chunk:
                self._ready = self._framer.feed(chunk)
                if self._ready:
                    self._due = asyncio.get_running_loop().time() + self._bounds.between_seconds
            else:
                self._ended = True
                rest = self._framer.rest()
                self._ready = [rest] if rest else []
        return self._ready.pop(0)

    async def batch(self, most: int | None = None) -> list[bytes] | _Tick | None:
        """The whole events that have arrived (at least one, at most `most`), `TICK`, or None
        at the end."""
        first = await self.next()
        if not isinstance(first, bytes):
            return first
        take = len(self._ready) if most is None else most - 1
        ready, self._ready = self._ready[:take], self._ready[take:]
        ready.insert(0, first)
        return ready

    def push_back(self, event: bytes) -> None:
        self._ready.insert(0, event)


@dataclass(frozen=True, slots=True)
class Sink:
    """The client side of one relay: its exchange, the headers its answer starts with, and
    what the relay learns on the way."""

    exchange: Exchange
    headers: Headers
    learner: EventLearner


def _payload(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


async def first_event_failure(events: UpstreamEvents, now: float) -> StreamFailure | None:
    """Peek at the first event: a failure there can still move to another credential."""
    while (event := await events.next()) is TICK:
        pass
    if isinstance(event, bytes):
        events.push_back(event)
        if not _is_utf8(event):  # an event stream is UTF-8: this upstream is broken
            body = orjson.dumps({"error": {"type": "server_error", "message": _NOT_UTF8}})
            return StreamFailure(502, body, Verdict(True, reason=_NOT_UTF8))
        return event_failure(_payload(event_data(event)[1]), now)
    return None


_NOT_UTF8 = "the upstream's first event is not UTF-8"


def _is_utf8(event: bytes) -> bool:
    try:
        event.decode()
    except UnicodeDecodeError:
        return False
    return True


def error_event(route: Route, message: str) -> bytes:
    """A stream-terminating error in the client API's own event shape."""
    if route is Route.MESSAGES:
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
    if route is Route.CHAT:
        body = {"error": {"type": "upstream_error", "message": message}}
        return b"data: " + orjson.dumps(body) + b"\n\n" + _DONE
    if route is Route.GEMINI:
        body = {"error": {"code": 502, "message": message, "status": "UNAVAILABLE"}}
        return b"data: " + orjson.dumps(body) + b"\n\n"
    body = {"type": "error", "code": "upstream_error", "message": message}
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"


async def stream_events(
    events: UpstreamEvents,
    adapter: StreamAdapter | None,
    route: Route,
    sink: Sink,
    *,
    hide_usage: bool = False,
) -> str | None:
    """Relay events to the client as they come: the first at once, later ones that arrived
    together in one write. Returns the reason if the upstream broke."""
    exchange = sink.exchange
    send, record, output = exchange.send, exchange.record, exchange.output
    await exchange.start_stream(sink.headers)

    learn = sink.learner.learn_event

    def relayed(event: bytes) -> bytes | None:
        """What the client gets for one upstream event (None: nothing), noting what it tells."""
        if adapter is not None:
            payload = sink.learner.read(event_data(event)[1])
            return adapter.feed(payload if isinstance(payload, dict) else {}) or None
        payload = learn(event)
        if hide_usage and isinstance(payload, dict) and payload.get("choices") == []:
            return None  # the usage chunk asked for on the client's behalf
        if output and isinstance(payload, dict):
            return _with_output(event, payload, output)
        return event

    try:
        most: int | None = 1  # the time to first byte waits for no other event
        while (batch := await events.batch(most)) is not None:
            if isinstance(batch, _Tick):
                await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                continue
            most = None
            out = [relayed_event for event in batch if (relayed_event := relayed(event))]
            if out:
                body = out[0] if len(out) == 1 else b"".join(out)
                await send({"type": "http.response.body", "body": body, "more_body": True})
    except TRANSPORT_ERRORS as exc:
        reason = f"upstream stream broken: {type(exc).__name__}"
        exchange.broke(reason)
        await send({"type": "http.response.body", "body": error_event(route, reason)})
        return reason
    except Exception as exc:  # never end a started stream silently
        message = f"quotapool could not relay the rest of this stream ({type(exc).__name__})"
        exchange.broke(message)  # (the row is written as this last event leaves)
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": error_event(route, message)})
        raise
    tail = b""
    if adapter is not None:
        record.usage = adapter.usage
        tail = adapter.tail
    await send({"type": "http.response.body", "body": tail})
    return None


def _with_output(event: bytes, payload: dict[str, Any], items: list[Any]) -> bytes:
    """The Codex backend's `response.completed` carries `output: []` (its items came as
    `response.output_item.done`); clients read the final response from it, so fill it in."""
    response = payload.get("response")
    if payload.get("type") != "response.completed" or not isinstance(response, dict):
        return event
    if response.get("output"):
        return event
    filled = {**payload, "response": {**response, "output": items}}
    return b"event: response.completed\ndata: " + orjson.dumps(filled) + b"\n\n"


async def collect_response(events: UpstreamEvents, sink: Sink) -> StreamFailure | None:
    """Serve a non-streaming Responses client from a streamed upstream answer."""
    items: list[Any] = []
    final: dict[str, Any] | None = None
    while (event := await events.next()) is not None:
        if not isinstance(event, bytes):
            continue
        payload = sink.learner.read(event_data(event)[1])
        if not isinstance(payload, dict):
            continue
        kind = payload.get("type")
        if kind == "response.output_item.done":
            items.append(payload.get("item"))
        elif kind in ("response.completed", "response.incomplete"):
            final = payload.get("response")
        elif (failure := event_failure(payload, sink.exchange.now())) is not None:
            return failure
    if not isinstance(final, dict):
        return _incomplete()
    if not final.get("output"):
        final["output"] = items  # the Codex backend sends them only as output_item.done
    exchange = sink.exchange
    if exchange.output is not None:
        exchange.output = list(final["output"])
    if isinstance(response_id := final.get("id"), str):
        exchange.record.response_id = response_id
    exchange.record.usage = parse_usage(final.get("usage"))
    await _send_json(final, sink)
    return None


async def collect_adapted(
    events: UpstreamEvents, adapter: StreamAdapter, sink: Sink
) -> StreamFailure | None:
    """Serve a non-streaming client of another API (chat, Messages) from a streamed
    Responses answer."""
    while (event := await events.next()) is not None:
        if not isinstance(event, bytes):
            continue
        payload = sink.learner.read(event_data(event)[1])
        if (failure := event_failure(payload, sink.exchange.now())) is not None:
            return failure
        if isinstance(payload, dict):
            adapter.feed(payload)
    if not adapter.finished:
        return _incomplete()
    sink.exchange.record.usage = adapter.usage
    await _send_json(adapter.completion(), sink)
    return None


def _incomplete() -> StreamFailure:
    err = {
        "type": "server_error",
        "message": "the upstream stream ended before the response completed",
    }
    body = orjson.dumps({"error": err})
    return StreamFailure(502, body, Verdict(True, reason="upstream stream ended early"))


async def _send_json(payload: dict[str, Any], sink: Sink) -> None:
    await sink.exchange.answer(200, orjson.dumps(payload), sink.headers)
