"""The one place decisions turn into I/O: pick, call upstream, observe, fail over, relay."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import orjson

from quotapool.clock import Clock
from quotapool.domain.credential import CLAUDE_KINDS, Credential, Kind
from quotapool.domain.outcome import Failed, Served
from quotapool.domain.request import (
    DEFAULT_PROFILE,
    NOTHING_UNFIT,
    Route,
    RouteRequest,
    Unfit,
    agent_of,
)
from quotapool.domain.state import Status
from quotapool.net.client import UpstreamClient, UpstreamResponse
from quotapool.net.egress import report
from quotapool.proxy.asgi import JSON, Headers, Send, send_body
from quotapool.proxy.errors import Dialect, ErrorResponse, error, rejection_error
from quotapool.proxy.failover import Failover
from quotapool.proxy.learn import EventLearner
from quotapool.proxy.record import Record
from quotapool.proxy.relay import (
    MAX_ERROR_BYTES,
    TRANSPORT_ERRORS,
    BrokenAnswer,
    EventBounds,
    Sink,
    StreamFailure,
    UpstreamEvents,
    check_headers,
    collect_adapted,
    collect_response,
    first_event_failure,
    read_bounded,
    stream_events,
)
from quotapool.proxy.reservation import Reservation
from quotapool.proxy.warmup import Warmups
from quotapool.routing.affinity import affinity_key
from quotapool.routing.base import Decision, Rejection
from quotapool.routing.filters import comes_back_at
from quotapool.routing.profiles import PROFILE_HEADER, Profile, Routing
from quotapool.routing.scenarios import detect
from quotapool.secrets import Redactor, Secret
from quotapool.store.affinity import TURN_STATE, AffinityStore, MemoryAffinityStore
from quotapool.store.base import PoolStore
from quotapool.store.response_items import ResponseItems
from quotapool.translate import StreamAdapter, TranslationError
from quotapool.translate.table import (
    REFUSABLE,
    Upstream,
    cannot_carry,
    final_response,
    upstream_of,
)
from quotapool.translate.token_estimate import estimate_input_tokens
from quotapool.upstream.base import ClientRequest, Continued, Relay, Transport, UpstreamCall
from quotapool.upstream.signals import classify_error
from quotapool.upstream.usage import Usage, parse_usage

BRIEF_OUTAGE_SECONDS = 60.0
"""A bound account back within this long keeps its conversations (a stand-in is not persisted)."""
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


_JSON_TYPE = (b"content-type", JSON)
"""The content type of a failure quotapool describes itself (failure bodies are relayed with
their own headers)."""


class Refresher(Protocol):
    """Keeps access tokens fresh (see quotapool.accounts.refresh)."""

    def due(self, credential_id: str) -> bool: ...

    def expired(self, credential_id: str) -> bool: ...

    async def refresh(self, credential_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    max_attempts: int
    keepalive_seconds: float
    route_header: bool
    events: EventBounds = EventBounds()
    """What an upstream may send: events' size and time to arrive."""


def _upstream_headers(response: UpstreamResponse, keep_content_type: bool) -> Headers:
    headers: Headers = []
    for name, value in response.raw_headers:
        lower = name.lower()
        if lower in _SKIP_RESPONSE_HEADERS or (lower == b"content-type" and not keep_content_type):
            continue
        headers.append((lower, value))
    return headers


class Dispatcher:
    """Serves one client request over the pool: at most `max_attempts` credentials are tried,
    and only while nothing has been sent to the client."""

    def __init__(
        self,
        *,
        pool: PoolStore,
        transports: Mapping[Kind, Transport],
        secrets: Mapping[str, Secret],
        routing: Routing,
        clock: Clock,
        rng: random.Random,
        settings: DispatchSettings,
        affinity: AffinityStore | None = None,
        sticky: bool = True,
        refresher: Refresher | None = None,
        on_unauthorized: Callable[[str], None] = lambda _credential_id: None,
        redact: Redactor | None = None,
    ) -> None:
        self.redact = redact if redact is not None else Redactor(tuple)
        """Keeps pool secrets out of upstream errors before they are relayed, stored or read."""
        self.pool = pool
        self.refresher = refresher
        self.affinity = affinity if affinity is not None else MemoryAffinityStore()
        self.sticky = sticky
        """Soft session affinity on (hard ownership of response ids always applies)."""
        self.on_unauthorized = on_unauthorized
        self.transports = transports
        self.secrets = secrets
        self.routing = routing
        self.clock = clock
        self.rng = rng
        self.settings = settings
        self.client: UpstreamClient | None = None
        """Set at start-up (`net.aiohttp.AiohttpClient`); tests give a mock."""
        self.warmups: Warmups | None = None
        """Set when the request log is wired (`proxy.warmup`)."""
        self.items: ResponseItems | None = None
        """Conversations behind responses relayed from Codex accounts (`store.response_items`)."""
        self.elsewhere_seconds = 0.0
        """With replicas: how long a continuation waits for what the replica that answered the
        turn before may not have shared yet (its owner: tens of ms; its conversation: written
        to the database within 250 ms). 0: one process, which knows at once."""

    def use_routing(self, routing: Routing) -> None:
        """Switch profiles while running; requests in flight finish as they began."""
        self.routing = routing

    def profile(self, headers: Mapping[str, str]) -> Profile | str:
        """The request's routing profile (its `x-quotapool-profile` header, which the edge
        sets from a `/p/NAME/` path when absent; else "default"), or what to tell a client
        that named an unknown one."""
        name = headers.get(PROFILE_HEADER) or DEFAULT_PROFILE
        profile = self.routing.profiles.get(name)
        return profile if profile is not None else self.routing.unknown(name)

    def _anthropic_serves(self, request: ClientRequest, profile: Profile) -> bool:
        """An Anthropic key of the profile serves the model (else tokens are counted here)."""
        credentials = profile.view(self.pool.snapshot()).credentials
        return any(c.kind in CLAUDE_KINDS and c.serves(request.model) for c in credentials)

    async def _ready(
        self, request: ClientRequest, dialect: Dialect, send: Send, record: Record, base: Headers
    ) -> tuple[ClientRequest, Profile, str | None] | None:
        """The request as it is to be routed, its profile and the account that produced the
        response it continues; None when it was answered here (an error, a token count)."""
        profile = self.profile(request.headers)
        if isinstance(profile, str):
            await self._send_error(send, record, base, error(dialect, 400, profile))
            return None
        if request.route is Route.COUNT_TOKENS and not self._anthropic_serves(request, profile):
            count = orjson.dumps({"input_tokens": estimate_input_tokens(request.payload)})
            record.status, record.scenario = 200, "estimate"
            await send_body(send, 200, count, [*base, (b"x-quotapool-count", b"estimated")])
            return None
        scenario = detect(
            request.payload, len(request.body), request.model, profile.long_context_tokens
        )
        record.profile, record.scenario = profile.name, scenario
        if (model := profile.model_for(scenario, request.model)) != request.model:
            if request.allowed and model not in request.allowed:
                refused = _profile_model_refused(profile.name, scenario, model, request, dialect)
                await self._send_error(send, record, base, refused)
                return None
            request = _with_model(request, model)
        expanded, producer = await self._expanded(request, dialect)
        if isinstance(expanded, ErrorResponse):
            await self._send_error(send, record, base, expanded)
            return None
        return expanded, profile, producer

    async def serve(
        self, request: ClientRequest, dialect: Dialect, send: Send, record: Record, base: Headers
    ) -> None:
        """Answer `request`; every attempt and its outcome land in `record`."""
        ready = await self._ready(request, dialect, send, record, base)
        if ready is None:
            return
        request, profile, producer = ready
        last_failure: tuple[int, bytes, Headers] | None = None
        key = affinity_key(request.headers, request.payload, request.client)
        bound = self.affinity.bound(key, self.clock.now()) if self.sticky else None
        bound = bound or producer  # its account holds the conversation's prompt cache
        gate = self.routing.gated_models.get(request.model)
        routed = RouteRequest(
            request.route,
            request.model,
            frozenset(),
            gate,
            bound,
            await self._owner(request),
            profile.name,
            profile.stand_in(request.model),
            self._unfit(request, profile),
            agent_of(request.headers),
        )
        failover = Failover(self, routed, record, profile)
        while (choice := await failover.next()) is not None:
            if isinstance(choice, Rejection):
                await self._reject(choice, dialect, send, record, base, last_failure)
                return
            credential = choice.credential
            sent = profile.sent_model(credential, request.model)
            record.sent_model = sent
            try:
                call = self.transports[credential.kind].prepare(
                    _with_model(request, sent), credential, self.secrets[credential.id]
                )
            except TranslationError as exc:
                bad = error(dialect, 400, str(exc), param=exc.param)
                await self._send_error(send, record, base, bad)
                return
            if self.warmups is not None and record.attempts == 1:  # (not for a refused one)
                self.warmups.after(choice, failover.request, profile)
            headers = self._headers(base, choice)
            if call.dropped:
                headers.append((b"x-quotapool-dropped", ", ".join(call.dropped).encode()))
            # see relay._with_output and final_response
            record.output_items = [] if _kept_here(credential, request.route) else None
            failure = await self.attempt(
                call, credential, request, dialect, send, record, headers, choice
            )
            if failure is None:
                self._remember(key, bound, credential.id, record, routed)
                self._keep(request, record)
                return
            last_failure = failure
            failover.failed(choice)
        if last_failure is None:  # every credential tried had an access token it could not use
            message = "No credential's access token could be refreshed; log the accounts in again."
            await self._send_error(send, record, base, error(dialect, 503, message))
            return
        status, body, upstream_headers = last_failure
        record.status = status
        await send_body(send, status, body, base + upstream_headers, None)

    def _unfit(self, request: ClientRequest, profile: Profile) -> Mapping[str, Unfit]:
        """The profile's credentials whose API cannot honour the request's parameters (routing
        leaves them out, so a credential that can serves it)."""
        payload, refusable = request.payload, REFUSABLE[request.route]
        if refusable.isdisjoint(payload) or not any(
            payload.get(name) not in (None, False) for name in refusable
        ):
            return NOTHING_UNFIT
        route, seen = request.route, dict[Upstream, Unfit | None]()
        unfit: dict[str, Unfit] = {}
        for credential in profile.view(self.pool.snapshot()).credentials:
            if route not in credential.routes:
                continue
            upstream = upstream_of(credential, route)
            if upstream not in seen:
                lenient = self.transports[credential.kind].lenient
                seen[upstream] = cannot_carry(route, upstream, payload, lenient=lenient)
            if (found := seen[upstream]) is not None:
                unfit[credential.id] = found
        return unfit

    async def _expanded(
        self, request: ClientRequest, dialect: Dialect
    ) -> tuple[ClientRequest | ErrorResponse, str | None]:
        """A continuation (`previous_response_id`) of a response relayed from a Codex account,
        with the conversation so far as its input instead: the ChatGPT backend refuses the id
        over HTTP, and a full input can go to another account when the first is exhausted.
        Also the account that produced it (where the conversation's cache is warm)."""
        previous = request.payload.get("previous_response_id")
        if request.route is not Route.RESPONSES or not isinstance(previous, str):
            return request, None
        owner = await self._owner_of(previous)
        context, items = None, self.items
        if items is not None:  # (with replicas, its owner's replica may not have written it yet)
            wait = self.elsewhere_seconds if owner else 0.0
            context = await _found_within(wait, lambda: items.context(previous))
        if context is None:
            producer = self.pool.snapshot().by_id(owner) if owner is not None else None
            if producer is not None and _kept_here(producer, Route.RESPONSES):
                message = (
                    f"The conversation before {previous!r} is no longer kept here (after "
                    "response_items_ttl); send the whole conversation as input instead."
                )
                return error(dialect, 400, message, param="previous_response_id"), None
            return request, None
        payload = {k: v for k, v in request.payload.items() if k != "previous_response_id"}
        payload["input"] = context + input_items(request.payload)
        expanded = replace(
            request,
            body=orjson.dumps(payload),
            payload=payload,
            continued=Continued(previous, len(context)),
        )
        return expanded, owner

    def _keep(self, request: ClientRequest, record: Record) -> None:
        """Keep the conversation behind a response from a Codex account (to expand its id),
        unless the client said it will not continue from it (`store: false`, as the Codex CLI
        does: it sends each turn whole)."""
        if request.payload.get("store") is False:
            return
        if self.items is None or not record.output_items or not record.response_id:
            return
        added = input_items(request.payload)
        parent = None
        if (continued := request.continued) is not None:  # only its own turn: the rest is kept
            added, parent = added[continued.context_items :], continued.response_id
        self.items.keep(record.response_id, added + record.output_items, self.clock.now(), parent)

    async def _owner(self, request: ClientRequest) -> str | None:
        """The account that must serve a continuation: of its response id or its turn state."""
        previous = request.payload.get("previous_response_id")
        if isinstance(previous, str) and (owner := self.affinity.owner(previous)):
            return owner
        return await self.turn_owner(request.headers.get("x-codex-turn-state"))

    async def turn_owner(self, turn_state: str | None) -> str | None:
        """The account that gave out `turn_state` (with replicas, perhaps a moment ago)."""
        return await self._owner_of(TURN_STATE + turn_state) if turn_state else None

    async def _owner_of(self, response_id: str) -> str | None:
        """The owner of a response id or turn state, waiting `elsewhere_seconds` for one
        another replica may not have shared yet."""

        async def owned() -> str | None:
            return self.affinity.owner(response_id)

        return await _found_within(self.elsewhere_seconds, owned)

    def _remember(
        self, key: str, bound: str | None, served_by: str, record: Record, request: RouteRequest
    ) -> None:
        """Own what the account produced; bind the conversation to it unless it was only a
        stand-in for a brief outage of its own account (then it returns to its warm cache)."""
        now = self.clock.now()
        if (
            record.response_id and request.route is Route.RESPONSES
        ):  # ids a client can continue from
            self.affinity.own(record.response_id, served_by, now)
        if record.turn_state:
            self.affinity.own(TURN_STATE + record.turn_state, served_by, now)
        if bound is not None and bound != served_by:
            back = comes_back_at(self.pool.snapshot().state(bound), request, now)
            if back is not None and back - now <= BRIEF_OUTAGE_SECONDS:
                return
        self.affinity.bind(key, served_by, now)

    async def token_ready(self, credential_id: str) -> bool:
        """Refresh an access token that is about to expire; False if it cannot be used."""
        refresher = self.refresher
        if refresher is None or not refresher.due(credential_id):
            return True
        await refresher.refresh(credential_id)
        if not refresher.expired(credential_id):
            return True
        if self.pool.snapshot().state(credential_id).status is Status.ACTIVE:
            reason = "access token expired and could not be refreshed"
            self.pool.apply(Failed(credential_id, self.clock.now(), reason))
        return False  # (a refused refresh has already marked it reauth_required)

    def _headers(self, base: Headers, decision: Decision) -> Headers:
        headers = list(base)
        if self.settings.route_header:
            headers.append((b"x-quotapool-route", decision.route_header.encode()))
        return headers

    async def _reject(
        self,
        rejection: Rejection,
        dialect: Dialect,
        send: Send,
        record: Record,
        base: Headers,
        last_failure: tuple[int, bytes, Headers] | None,
    ) -> None:
        now = self.clock.now()
        if (
            last_failure is not None
            and rejection.retry_at is None
            and not rejection.no_match
            and not rejection.outage
        ):
            status, body, upstream_headers = last_failure
            record.status = status  # (the row is written before the answer's last byte)
            await send_body(send, status, body, base + upstream_headers, None)
            return
        response = rejection_error(rejection, dialect, now)
        await self._send_error(send, record, base, response)

    async def _send_error(
        self, send: Send, record: Record, base: Headers, response: ErrorResponse
    ) -> None:
        record.status = response.status
        record.error = response.body.decode()
        await send_body(send, response.status, response.body, base + list(response.headers))

    async def attempt(
        self,
        call: UpstreamCall,
        credential: Credential,
        request: ClientRequest,
        dialect: Dialect,
        send: Send,
        record: Record,
        headers: Headers,
        decision: Decision | None = None,
    ) -> tuple[int, bytes, Headers] | None:
        """One try on one credential. Returns the failure to fail over from, or None if the
        client got its answer (success, a client error, or a stream that broke mid-way).
        A selection counts toward the `decision`'s rotation; without one (a warmup), none."""
        assert self.client is not None, "dispatcher used before start-up"
        clock, cid = self.clock, credential.id
        rotation, catch_up = (decision.rotation, decision.catch_up) if decision else (None, 0.0)
        with Reservation(self.pool, clock, cid, rotation, catch_up) as held:
            try:
                return await self._exchange(
                    call, credential, request, dialect, send, record, headers, held
                )
            except TRANSPORT_ERRORS as exc:
                report(credential.name, exc)
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                held.settle(Failed(cid, clock.now(), reason))
                record.error = reason
                if record.ttfb_ms is not None:
                    return None  # the client has its answer's start; the stream ended it
                unreachable = f"upstream {credential.name} unreachable: {reason}"
                return 502, error(dialect, 502, unreachable).body, [_JSON_TYPE]

    async def _exchange(
        self,
        call: UpstreamCall,
        credential: Credential,
        request: ClientRequest,
        dialect: Dialect,
        send: Send,
        record: Record,
        headers: Headers,
        held: Reservation,
    ) -> tuple[int, bytes, Headers] | None:
        """The call itself; every way it ends settles `held`, or leaves that to its owner."""
        translated = dialect if call.relay is Relay.TRANSLATED else None
        assert self.client is not None
        clock, cid = self.clock, credential.id
        transport = self.transports[credential.kind]
        gated = request.model if request.model in self.routing.gated_models else None
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
                    for name, value in _upstream_headers(response, keep_content_type=True)
                ]
                if response.status == 401:
                    self.on_unauthorized(cid)
                body, upstream = in_client_dialect(translated, response.status, body, upstream)
                if verdict.failover:
                    held.settle(verdict.outcome(cid, now, quota, gated, request.model))
                    record.error = verdict.reason
                    return response.status, body, upstream
                held.settle(Served(cid, now, quota, request.model, ttfb_ms, gated is not None))
                record.status = response.status
                record.error = body[:2000].decode(errors="replace")
                await send_body(send, response.status, body, headers + upstream, None)
                return None
            if call.relay is Relay.PASSTHROUGH and response.content_type != "text/event-stream":
                await _pass_json(response, send, record, headers, clock.now, self.settings.events)
                quota = transport.quota(response.headers, now)
                held.settle(Served(cid, now, quota, request.model, ttfb_ms, gated is not None))
                return None
            learner = EventLearner(record, cid, self.pool, clock)
            sink = Sink(
                send,
                record,
                headers + _upstream_headers(response, keep_content_type=False),
                lambda: (clock.now() - record.at) * 1000.0,
                clock.now,
                learner,
            )
            outcome = await self._relay(call, request, response, sink)
            quota = transport.quota(response.headers, now)
            if isinstance(outcome, StreamFailure):
                held.settle(outcome.verdict.outcome(cid, clock.now(), quota, gated, request.model))
                record.error = outcome.verdict.reason
                failed = self.redact.bytes(outcome.body)
                return outcome.status, *in_client_dialect(
                    translated, outcome.status, failed, [_JSON_TYPE]
                )
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
            sink.record.response_id = str(final.get("id"))  # what the client continues from
            if sink.record.output_items is not None:
                sink.record.output_items = list(final.get("output") or [])
        return outcome


async def _pass_json(
    response: UpstreamResponse,
    send: Send,
    record: Record,
    headers: Headers,
    now: Callable[[], float],
    bounds: EventBounds,
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
    record.status = response.status
    record.ttfb_ms = (now() - record.at) * 1000.0
    record.usage, record.response_id = _body_fields(payload)  # for the log and for ownership
    upstream = _upstream_headers(response, keep_content_type=True)
    await send_body(send, response.status, body, headers + upstream, None)


def _profile_model_refused(
    profile: str, scenario: str, model: str, request: ClientRequest, dialect: Dialect
) -> ErrorResponse:
    """The 403 of a request its client key may make, but whose profile would send a model
    the key may not use (a client's way around its key's allowlist)."""
    allowed = ", ".join(sorted(request.allowed))
    message = (
        f"The routing profile {profile!r} sends {model!r} for this request (scenario "
        f"{scenario!r}), and this client key may use only: {allowed}. Send it without that "
        "profile, or ask for a key that may use the model."
    )
    return error(dialect, 403, message, param="model", code="model_not_allowed")


def _with_model(request: ClientRequest, model: str) -> ClientRequest:
    """The request asking for `model` (a profile's scenario model, a credential's model map)."""
    if model == request.model:
        return request
    payload = {**request.payload, "model": model}
    return replace(request, body=orjson.dumps(payload), payload=payload, model=model)


def in_client_dialect(
    dialect: Dialect | None, status: int, body: bytes, headers: Headers
) -> tuple[bytes, Headers]:
    """An upstream error as the client's API (`dialect`) shapes errors, when the two APIs
    differ (the Codex backend says `{"detail": …}`; an Anthropic client expects
    `{"type": "error", …}`); None: they are the same."""
    if dialect is None:
        return body, headers
    kept = [h for h in headers if h[0] != b"content-type"]
    return error(dialect, status, _upstream_message(body)).body, [_JSON_TYPE, *kept]


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


def _kept_here(credential: Credential, route: Route) -> bool:
    """Responses on this credential cannot be continued upstream by id (the ChatGPT backend
    refuses `previous_response_id`; chat and Messages upstreams have none): quotapool keeps
    their conversations to expand the id."""
    return route is Route.RESPONSES and upstream_of(credential, route) is not Upstream.RESPONSES


def input_items(payload: Mapping[str, Any]) -> list[Any]:
    """A Responses request's input as a list of items (a string is one user message)."""
    given = payload.get("input")
    if isinstance(given, str):
        return [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": given}]}
        ]
    return list(given) if isinstance(given, list) else []


def _body_fields(payload: Any) -> tuple[Usage | None, str | None]:
    """Usage and response id of a JSON answer."""
    if not isinstance(payload, dict):
        return None, None
    response_id = payload.get("id")
    usage = parse_usage(payload.get("usage"))
    return usage, response_id if isinstance(response_id, str) else None


T = TypeVar("T")


async def _found_within(seconds: float, find: Callable[[], Awaitable[T | None]]) -> T | None:
    """What `find` finds now or, looking again every 20 ms, within `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (found := await find()) is None and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return found
