"""Relaying an upstream event stream to the client: as it arrives, translated, or collected."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from quotapool.domain.request import Route
from quotapool.net.client import Body
from quotapool.proxy.asgi import Headers, Send, send_body, start_stream
from quotapool.proxy.record import Record
from quotapool.translate import StreamAdapter
from quotapool.upstream.signals import (
    QUOTA_ERRORS,
    Verdict,
    classify_error,
)
from quotapool.upstream.sse import KEEPALIVE, SSEFramer, event_data
from quotapool.upstream.usage import parse_usage

if TYPE_CHECKING:
    from quotapool.proxy.learn import EventLearner

TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)
_RATE_CODES = QUOTA_ERRORS | {"usage_limit_reached", "rate_limit_exceeded", "rate_limit_error"}
_SERVER_CODES = frozenset({"server_error", "overloaded_error", "api_error", "internal_error"})
_DONE = b"data: [DONE]\n\n"


class _Tick:
    """The upstream has been silent for a keep-alive interval."""


TICK = _Tick()


class UpstreamEvents:
    """Whole SSE events from an upstream body; `TICK` after each silent keep-alive interval."""

    def __init__(self, content: Body, keepalive: float) -> None:
        self._content = content
        self._keepalive = keepalive
        self._framer = SSEFramer()
        self._ready: list[bytes] = []
        self._ended = False

    async def next(self) -> bytes | _Tick | None:
        """The next raw event, `TICK`, or None at the end of the stream."""
        while not self._ready:
            if self._ended:
                return None
            try:
                async with asyncio.timeout(self._keepalive) as deadline:
                    chunk = await self._content.readany()
            except TimeoutError:
                if deadline.expired():
                    return TICK
                raise
            if chunk:
                self._ready = self._framer.feed(chunk)
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
class StreamFailure:
    """The upstream reported a failure in its stream before the client saw anything."""

    status: int
    body: bytes
    verdict: Verdict


@dataclass(slots=True)
class Sink:
    """The client side of one relay, and what the relay learns on the way."""

    send: Send
    record: Record
    headers: Headers
    elapsed_ms: Callable[[], float]
    now: Callable[[], float]
    learner: EventLearner


def _payload(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def event_failure(payload: Any, now: float) -> StreamFailure | None:
    """A stream event that means the credential failed: a rate limit or an upstream error."""
    if not isinstance(payload, dict) or payload.get("type") not in ("error", "response.failed"):
        return None
    err = payload.get("error") or (payload.get("response") or {}).get("error") or {}
    if not isinstance(err, dict):
        return None
    code = err.get("type") or err.get("code")
    declared = payload.get("status")
    if code in _RATE_CODES or declared == 429:
        status = 429
    elif code in _SERVER_CODES or (isinstance(declared, int) and declared >= 500):
        status = 502
    else:
        return None
    body = orjson.dumps({"error": err})
    return StreamFailure(status, body, classify_error(status, {}, body, now))


async def first_event_failure(events: UpstreamEvents, now: float) -> StreamFailure | None:
    """Peek at the first event: a failure there can still move to another credential."""
    while (event := await events.next()) is TICK:
        pass
    if isinstance(event, bytes):
        events.push_back(event)
        return event_failure(_payload(event_data(event)[1]), now)
    return None


def error_event(route: Route, message: str) -> bytes:
    """A stream-terminating error in the client API's own event shape."""
    if route is Route.MESSAGES:
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
    if route is Route.CHAT:
        body = {"error": {"type": "upstream_error", "message": message}}
        return b"data: " + orjson.dumps(body) + b"\n\n" + _DONE
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
    send, record = sink.send, sink.record
    record.status = 200
    record.ttfb_ms = sink.elapsed_ms()
    await start_stream(send, 200, sink.headers)

    learn = sink.learner.learn_event

    def relayed(event: bytes) -> bytes | None:
        """What the client gets for one upstream event (None: nothing), noting what it tells."""
        if adapter is not None:
            payload = sink.learner.read(event_data(event)[1])
            return adapter.feed(payload if isinstance(payload, dict) else {}) or None
        payload = learn(event)
        if hide_usage and isinstance(payload, dict) and payload.get("choices") == []:
            return None  # the usage chunk asked for on the client's behalf
        if record.output_items and isinstance(payload, dict):
            return _with_output(event, payload, record.output_items)
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
        record.error = reason
        await send({"type": "http.response.body", "body": error_event(route, reason)})
        return reason
    except Exception as exc:  # never end a started stream silently
        with contextlib.suppress(Exception):
            message = f"quotapool could not relay the rest of this stream ({type(exc).__name__})"
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
        elif (failure := event_failure(payload, sink.now())) is not None:
            return failure
    if not isinstance(final, dict):
        return _incomplete()
    if not final.get("output"):
        final["output"] = items  # the Codex backend sends them only as output_item.done
    if sink.record.output_items is not None:
        sink.record.output_items = list(final["output"])
    if isinstance(response_id := final.get("id"), str):
        sink.record.response_id = response_id
    sink.record.usage = parse_usage(final.get("usage"))
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
        if (failure := event_failure(payload, sink.now())) is not None:
            return failure
        if isinstance(payload, dict):
            adapter.feed(payload)
    if not adapter.finished:
        return _incomplete()
    sink.record.usage = adapter.usage
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
    sink.record.status = 200
    sink.record.ttfb_ms = sink.elapsed_ms()
    await send_body(sink.send, 200, orjson.dumps(payload), sink.headers)
