"""One try of a request on one credential: the call, what the answer teaches the pool, and the
answer relayed in the client's API — or, while the client has no byte yet, what to fail over
from."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from quotapool import tracing
from quotapool.clock import Clock
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.outcome import Failed, Served
from quotapool.net.client import BrokenAnswer, UpstreamClient, UpstreamResponse, read_bounded
from quotapool.net.egress import report
from quotapool.proxy.asgi import JSON, Headers
from quotapool.proxy.errors import Dialect, error
from quotapool.proxy.exchange import Exchange
from quotapool.proxy.learn import EventLearner
from quotapool.proxy.relay import (
    MAX_ERROR_BYTES,
    TRANSPORT_ERRORS,
    EventBounds,
    Sink,
    UpstreamEvents,
    check_headers,
    collect_adapted,
    collect_response,
    first_event_failure,
    stream_events,
)
from quotapool.proxy.reservation import Reservation
from quotapool.routing.base import Decision
from quotapool.secrets import Redactor, Secret
from quotapool.store.base import PoolStore
from quotapool.translate import StreamAdapter
from quotapool.translate.table import final_response
from quotapool.upstream.base import ClientRequest, Relay, Transport, UpstreamCall
from quotapool.upstream.signals import StreamFailure, classify_error
from quotapool.upstream.usage import Usage, usage_in_event

_SKIP_RESPONSE_HEADERS = frozenset(
    {
        b"content-length",
        b"content-encoding",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"date",
        b"server",
        b"set-cookie",
        b"alt-svc",
        b"strict-transport-security",
    }
)
JSON_TYPE = (b"content-type", JSON)
"""The content type of a failure quotapool describes itself (failure bodies are relayed with
their own headers)."""


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A try the client saw nothing of: what to answer if no other credential does."""

    status: int
    body: bytes
    headers: Headers


@dataclass(frozen=True, slots=True)
class RelaySettings:
    keepalive_seconds: float
    """A comment line to the client after this long without an event."""
    events: EventBounds = EventBounds()
    """What an upstream may send: events' size and time to arrive."""


class Attempts:
    """Runs one try at a time on a credential for the dispatcher, the WebSocket bridge's
    fallback and warmups; each try is a `Reservation` settled with its outcome."""

    def __init__(
        self,
        *,
        client: UpstreamClient,
        pool: PoolStore,
        transports: Mapping[Kind, Transport],
        secrets: Mapping[str, Secret],
        clock: Clock,
        settings: RelaySettings,
        redact: Redactor | None = None,
        on_unauthorized: Callable[[str], None] = lambda _credential_id: None,
    ) -> None:
        self.client = client
        """`net.aiohttp.AiohttpClient`; tests give a `testing.mock_upstream.MockClient`."""
        self.pool = pool
        self.transports = transports
        self.secrets = secrets
        self.clock = clock
        self.settings = settings
        self.redact = redact if redact is not None else Redactor(tuple)
        """Keeps pool secrets out of upstream errors before they are relayed, stored or read."""
        self.on_unauthorized = on_unauthorized
        self.gated_models: Collection[str] = ()
        """Models whose own quota a success does not vouch for (the live routing's)."""

    def prepare(self, request: ClientRequest, credential: Credential) -> UpstreamCall:
        """The call `credential` takes for `request` (may raise `TranslationError`)."""
        transport = self.transports[credential.kind]
        return transport.prepare(request, credential, self.secrets[credential.id])

    async def run(
        self,
        call: UpstreamCall,
        credential: Credential,
        request: ClientRequest,
        exchange: Exchange,
        headers: Headers,
        decision: Decision | None = None,
    ) -> Unanswered | None:
        """One try on one credential. Returns the failure to fail over from, or None if the
        client got its answer (success, a client error, or a stream that broke mid-way).
        A selection counts toward the `decision`'s rotation; without one (a warmup), none."""
        clock, cid = self.clock, credential.id
        rotation, catch_up = (decision.rotation, decision.catch_up) if decision else (None, 0.0)
        attributes = {"quotapool.credential": credential.name, "url.full": call.url}
        with (
            Reservation(self.pool, clock, cid, rotation, catch_up) as held,
            tracing.span("upstream", attributes),
        ):
            try:
                return await self._call(call, credential, request, exchange, headers, held)
            except TRANSPORT_ERRORS as exc:
                report(credential.name, exc)
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                held.settle(Failed(cid, clock.now(), reason))
                exchange.broke(reason)
                if exchange.answered:
                    return None  # the client has its answer's start; the stream ended it
                unreachable = f"upstream {credential.name} unreachable: {reason}"
                body = error(exchange.dialect, 502, unreachable).body
                return Unanswered(502, body, [JSON_TYPE])

    async def _call(
        self,
        call: UpstreamCall,
        credential: Credential,
        request: ClientRequest,
        exchange: Exchange,
        headers: Headers,
        held: Reservation,
    ) -> Unanswered | None:
        """The call itself; every way it ends settles `held`, or leaves that to its owner."""
        translated = exchange.dialect if call.relay is Relay.TRANSLATED else None
        record = exchange.record
        clock, cid = self.clock, credential.id
        transport = self.transports[credential.kind]
        gated = request.model if request.model in self.gated_models else None
        sent = clock.monotonic()
        egress = self.secrets[cid].egress
        async with self.client.post(call.url, call.body, call.headers, egress=egress) as response:
            now = clock.now()
            ttfb_ms = (clock.monotonic() - sent) * 1000.0
            check_headers(response.raw_headers)
            record.turn_state = response.headers.get("x-codex-turn-state")
            # Headroom is read from the headers after the client has its answer (off the
            # path to its first byte), except when it decides a failover.
            if response.status >= 400:
                quota = transport.quota(response.headers, now)
                body = await read_bounded(response.content, MAX_ERROR_BYTES, "an error body")
                body = self.redact.bytes(body)
                verdict = classify_error(response.status, response.headers, body, now)
                upstream = [
                    (name, self.redact.bytes(value))
                    for name, value in upstream_headers(response, keep_content_type=True)
                ]
                if response.status == 401:
                    self.on_unauthorized(cid)
                body, upstream = in_client_dialect(translated, response.status, body, upstream)
                if verdict.failover:
                    held.settle(verdict.outcome(cid, now, quota, gated, request.model))
                    exchange.broke(verdict.reason)
                    return Unanswered(response.status, body, upstream)
                held.settle(Served(cid, now, quota, request.model, ttfb_ms, gated is not None))
                reason = body[:2000].decode(errors="replace")
                await exchange.relay_error(response.status, body, headers + upstream, reason)
                return None
            if call.relay is Relay.PASSTHROUGH and response.content_type != "text/event-stream":
                await _pass_json(response, exchange, headers, self.settings.events)
                quota = transport.quota(response.headers, now)
                held.settle(Served(cid, now, quota, request.model, ttfb_ms, gated is not None))
                return None
            learner = EventLearner(record, cid, self.pool, clock, output=exchange.output)
            relayed = headers + upstream_headers(response, keep_content_type=False)
            sink = Sink(exchange, relayed, learner)
            outcome = await self._relay(call, request, response, sink)
            quota = transport.quota(response.headers, now)
            if isinstance(outcome, StreamFailure):
                held.settle(outcome.verdict.outcome(cid, clock.now(), quota, gated, request.model))
                exchange.broke(outcome.verdict.reason)
                failed = self.redact.bytes(outcome.body)
                body, kept = in_client_dialect(translated, outcome.status, failed, [JSON_TYPE])
                return Unanswered(outcome.status, body, kept)
            if isinstance(outcome, str):
                held.settle(Failed(cid, clock.now(), outcome))
            elif learner.limited is not None:  # the stream ended on a limit: the client has it
                held.settle(replace(learner.limited, quota=quota))
            else:
                held.settle(
                    Served(cid, clock.now(), quota, request.model, ttfb_ms, gated is not None)
                )
            return None

    async def _relay(
        self,
        call: UpstreamCall,
        request: ClientRequest,
        response: UpstreamResponse,
        sink: Sink,
    ) -> StreamFailure | str | None:
        """Send a 2xx upstream answer in the client's API shape. Returns a failure that can
        still fail over, the reason a started stream broke, or None."""
        events = UpstreamEvents(
            response.content, self.settings.keepalive_seconds, self.settings.events
        )
        if call.relay is Relay.RESPONSES_FROM_STREAM:
            return await collect_response(events, sink)
        adapter: StreamAdapter | None = None
        if call.adapter is not None:
            adapter = call.adapter(int(self.clock.now()), request.model)
        outcome: StreamFailure | str | None
        if adapter is not None and not request.stream:
            outcome = await collect_adapted(events, adapter, sink)
        elif (failure := await first_event_failure(events, self.clock.now())) is not None:
            return failure
        else:
            outcome = await stream_events(
                events, adapter, request.route, sink, hide_usage=call.hide_usage_chunk
            )
        if adapter is not None and (final := final_response(adapter)) is not None:
            exchange = sink.exchange
            exchange.record.response_id = str(final.get("id"))  # what the client continues from
            if exchange.output is not None:
                exchange.output = list(final.get("output") or [])
        return outcome


async def _pass_json(
    response: UpstreamResponse, exchange: Exchange, headers: Headers, bounds: EventBounds
) -> None:
    """A whole (non-stream) answer in the client's own API: sent as it came (bounded as an
    event is: in size, and in time to arrive whole)."""
    body = await read_bounded(
        response.content, bounds.max_bytes, "the answer", bounds.between_seconds
    )
    payload: Any = None
    if "json" in response.content_type:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BrokenAnswer("the upstream's JSON answer does not parse") from None
    record = exchange.record
    record.usage, record.response_id = _body_fields(payload)  # for the log and for ownership
    upstream = upstream_headers(response, keep_content_type=True)
    await exchange.answer(response.status, body, headers + upstream, None)


def upstream_headers(response: UpstreamResponse, keep_content_type: bool) -> Headers:
    """The upstream's answer headers a client may see (not hop-by-hop, cookies or framing)."""
    headers: Headers = []
    for name, value in response.raw_headers:
        lower = name.lower()
        if lower in _SKIP_RESPONSE_HEADERS or (lower == b"content-type" and not keep_content_type):
            continue
        headers.append((lower, value))
    return headers


def in_client_dialect(
    dialect: Dialect | None, status: int, body: bytes, headers: Headers
) -> tuple[bytes, Headers]:
    """An upstream error as the client's API (`dialect`) shapes errors, when the two APIs
    differ (the Codex backend says `{"detail": …}`; an Anthropic client expects
    `{"type": "error", …}`); None: they are the same."""
    if dialect is None:
        return body, headers
    kept = [h for h in headers if h[0] != b"content-type"]
    return error(dialect, status, _upstream_message(body)).body, [JSON_TYPE, *kept]


def _upstream_message(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:500].decode(errors="replace") or "the upstream refused the request"
    if isinstance(parsed, dict):
        inner = parsed.get("error")
        found: dict[str, Any] = inner if isinstance(inner, dict) else parsed
        for key in ("detail", "message", "error"):
            if isinstance(value := found.get(key), str) and value:
                return value
    return body[:500].decode(errors="replace")


def _body_fields(payload: Any) -> tuple[Usage | None, str | None]:
    """Usage and response id of a JSON answer."""
    if not isinstance(payload, dict):
        return None, None
    response_id = payload.get("id")
    usage = usage_in_event(payload)
    return usage, response_id if isinstance(response_id, str) else None
