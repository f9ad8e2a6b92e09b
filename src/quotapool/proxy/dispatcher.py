"""The one place decisions turn into I/O: ready the request, choose, try, fail over, answer.

One try is `attempt.Attempts`; bindings, owners and continuations are `conversations`; the
choose-and-fail-over loop is `failover`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import orjson

from quotapool.domain.api import Api
from quotapool.domain.credential import CLAUDE_KINDS
from quotapool.domain.request import (
    DEFAULT_PROFILE,
    NOTHING_UNFIT,
    Route,
    RouteRequest,
    Unfit,
    agent_of,
)
from quotapool.jobs.warmup import Warmups
from quotapool.jsonlazy import plain
from quotapool.proxy.asgi import Headers
from quotapool.proxy.attempt import Attempts, Unanswered
from quotapool.proxy.conversations import Conversations, kept_here
from quotapool.proxy.errors import Dialect, ErrorResponse, error, rejection_error
from quotapool.proxy.exchange import Exchange
from quotapool.proxy.failover import Chooser, Failover
from quotapool.routing.base import Decision, Rejection
from quotapool.routing.profiles import PROFILE_HEADER, Profile, Routing
from quotapool.routing.scenarios import detect
from quotapool.translate import TranslationError
from quotapool.translate.gemini_responses import estimate_tokens, flat
from quotapool.translate.table import REFUSABLE, cannot_carry, upstream_of
from quotapool.translate.token_estimate import estimate_input_tokens
from quotapool.upstream.base import ClientRequest


class Dispatcher:
    """Serves one client request over the pool: at most `max_attempts` credentials are tried,
    and only while nothing has been sent to the client."""

    def __init__(
        self,
        *,
        attempts: Attempts,
        conversations: Conversations,
        chooser: Chooser,
        routing: Routing,
        route_header: bool,
        warmups: Warmups | None = None,
    ) -> None:
        self.attempts = attempts
        self.conversations = conversations
        self.chooser = chooser
        self.routing = routing
        attempts.gated_models = routing.gated_models
        self.route_header = route_header
        """Each answer says which credential served it and why (`x-quotapool-route`)."""
        self.warmups = warmups
        self.pool = chooser.pool
        self.clock = chooser.clock

    def use_routing(self, routing: Routing) -> None:
        """Switch profiles while running; requests in flight finish as they began."""
        self.routing = routing
        self.attempts.gated_models = routing.gated_models

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
        self, request: ClientRequest, exchange: Exchange
    ) -> tuple[ClientRequest, Profile, str | None] | None:
        """The request as it is to be routed, its profile and the account that produced the
        response it continues; None when it was answered here (an error, a token count)."""
        dialect, record = exchange.dialect, exchange.record
        profile = self.profile(request.headers)
        if isinstance(profile, str):
            await exchange.fail(error(dialect, 400, profile))
            return None
        if request.route is Route.GEMINI_COUNT_TOKENS:
            await _estimated(exchange, {"totalTokens": estimate_tokens(request.payload)})
            return None
        if request.route is Route.COUNT_TOKENS and not self._anthropic_serves(request, profile):
            await _estimated(exchange, {"input_tokens": estimate_input_tokens(request.payload)})
            return None
        scenario = detect(request.payload, request.body, request.model, profile.long_context_tokens)
        record.profile, record.scenario = profile.name, scenario
        if (model := profile.model_for(scenario, request.model)) != request.model:
            if request.allowed and model not in request.allowed:
                await exchange.fail(
                    _profile_model_refused(profile.name, scenario, model, request, dialect)
                )
                return None
            request = _with_model(request, model)
        expanded, producer = await self.conversations.expanded(request, dialect)
        if isinstance(expanded, ErrorResponse):
            await exchange.fail(expanded)
            return None
        return expanded, profile, producer

    async def serve(self, request: ClientRequest, exchange: Exchange) -> None:
        """Answer `request`; every attempt and its outcome land in the exchange's record. When
        no credential can serve the model asked for, the profile's fallback models are tried
        in order (`routing.profiles.Fallback`)."""
        ready = await self._ready(request, exchange)
        if ready is None:
            return
        request, profile, producer = ready
        conversations, asked = self.conversations, request.model
        key = conversations.key(request)
        bound = conversations.bound(key) or producer  # where its prompt cache is warm
        owner = await conversations.owner(request)
        fallback = profile.fallback
        chain = fallback.chain(asked, request.allowed) if fallback.chains else ()
        held = conversations.fell_back(key, asked) if chain else None
        # A conversation that fell back stays there (its cache) until its model comes back.
        models = (*chain[chain.index(held) :], asked) if held in chain else (asked, *chain)
        answer: tuple[Rejection | None, Unanswered | None] = (None, None)
        until: float | None = None  # when the model asked for comes back (None: as held)
        for model in models:
            tried = await self._serve_model(
                request if model == asked else _with_model(request, model),
                Attempt(profile, exchange, key, bound, owner, None if model == asked else asked),
            )
            if tried is None:  # answered
                if not chain:
                    return
                if model == asked:
                    conversations.fall_back(key, asked, None)
                elif not fallback.at_once and exchange.record.status < 400:
                    conversations.fall_back(key, asked, model, until)
                return
            if model != asked:
                continue
            answer = tried  # what the client hears if no model can serve it
            rejection = tried[0]
            if rejection is not None and (rejection.param or rejection.reserved):
                break  # a refusal no other model changes
            retry_at = rejection.retry_at if rejection is not None else None
            until = retry_at or self.clock.now() + RETRY_ORIGINAL_SECONDS
        rejection, last_failure = answer
        exchange.record.fallback = None  # (none served it)
        if rejection is None:  # its attempts were spent
            await self._unanswered(exchange, last_failure)
            return
        await self._reject(rejection, exchange, last_failure)

    async def _serve_model(
        self, request: ClientRequest, at: Attempt
    ) -> tuple[Rejection | None, Unanswered | None] | None:
        """Try the credentials that serve the request's model, failing over; None once the
        client has its answer, else why not: the rejection when no credential is left (None
        when `max_attempts` were tried) and the last attempt's failure."""
        profile, exchange = at.profile, at.exchange
        record, conversations = exchange.record, self.conversations
        record.fallback = request.model if at.fell_back_from else None
        routed = RouteRequest(
            request.route,
            request.model,
            frozenset(),
            self.routing.gated_models.get(request.model),
            at.bound,
            at.owner,
            profile.name,
            profile.stand_in(request.model),
            self._unfit(request, profile),
            agent_of(request.headers),
        )
        failover = Failover(self.chooser, routed, record, profile)
        last_failure: Unanswered | None = None
        while (choice := await failover.next()) is not None:
            if isinstance(choice, Rejection):
                return choice, last_failure
            credential = choice.credential
            sent = profile.sent_model(credential, request.model)
            record.sent_model = sent
            try:
                call = self.attempts.prepare(_with_model(request, sent), credential)
            except TranslationError as exc:
                if at.fell_back_from is not None:  # (a model not asked for: the next one)
                    failover.failed(choice)
                    continue
                await exchange.fail(error(exchange.dialect, 400, str(exc), param=exc.param))
                return None
            if self.warmups is not None and record.attempts == 1:  # (not for a refused one)
                self.warmups.after(choice, failover.request, profile)
            headers = self._headers(exchange, choice)
            if at.fell_back_from is not None:
                fallback = f"{at.fell_back_from} -> {request.model}"
                headers.append((b"x-quotapool-fallback", fallback.encode()))
            if call.dropped:
                headers.append((b"x-quotapool-dropped", ", ".join(call.dropped).encode()))
            exchange.output = [] if kept_here(credential, request.route) else None
            failure = await self.attempts.run(call, credential, request, exchange, headers, choice)
            if failure is None:
                conversations.remember(at.key, at.bound, credential.id, record, routed)
                conversations.keep(request, exchange)
                return None
            last_failure = failure
            failover.failed(choice)
        return None, last_failure

    def _unfit(self, request: ClientRequest, profile: Profile) -> Mapping[str, Unfit]:
        """The profile's credentials whose API cannot honour the request's parameters (routing
        leaves them out, so a credential that can serves it)."""
        payload, refusable = request.payload, REFUSABLE[request.route]
        if request.route is Route.GEMINI:
            payload = flat(payload)  # (its generationConfig's fields too)
        if refusable.isdisjoint(payload) or not any(
            payload.get(name) not in (None, False) for name in refusable
        ):
            return NOTHING_UNFIT
        route, seen = request.route, dict[Api, Unfit | None]()
        unfit: dict[str, Unfit] = {}
        for credential in profile.view(self.pool.snapshot()).credentials:
            if route not in credential.routes:
                continue
            upstream = upstream_of(credential, route)
            if upstream not in seen:
                lenient = self.attempts.transports[credential.kind].lenient
                seen[upstream] = cannot_carry(route, upstream, payload, lenient=lenient)
            if (found := seen[upstream]) is not None:
                unfit[credential.id] = found
        return unfit

    def _headers(self, exchange: Exchange, decision: Decision) -> Headers:
        headers = exchange.headers()
        if self.route_header:
            headers.append((b"x-quotapool-route", decision.route_header.encode()))
        return headers

    async def _unanswered(self, exchange: Exchange, last_failure: Unanswered | None) -> None:
        """Every attempt failed: the last credential's failure is the answer."""
        if last_failure is None:  # every credential tried had an access token it could not use
            message = "No credential's access token could be refreshed; log the accounts in again."
            await exchange.fail(error(exchange.dialect, 503, message))
            return
        await _relay_failure(exchange, last_failure)

    async def _reject(
        self, rejection: Rejection, exchange: Exchange, last_failure: Unanswered | None
    ) -> None:
        if (
            last_failure is not None
            and rejection.retry_at is None
            and not rejection.no_match
            and not rejection.outage
        ):
            await _relay_failure(exchange, last_failure)
            return
        await exchange.fail(rejection_error(rejection, exchange.dialect, self.clock.now()))


_ESTIMATED = (b"x-quotapool-count", b"estimated")
RETRY_ORIGINAL_SECONDS = 300.0
"""A conversation that fell back from a model with no announced return asks for it again after
this long."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """What serving one model of a request needs besides the request itself."""

    profile: Profile
    exchange: Exchange
    key: str
    """The conversation's (`Conversations.key`)."""
    bound: str | None
    owner: str | None
    fell_back_from: str | None
    """The model asked for, when this is one of its fallbacks."""


async def _estimated(exchange: Exchange, count: dict[str, int]) -> None:
    """A token count answered here, as an estimate (no credential counts it)."""
    exchange.record.scenario = "estimate"
    await exchange.answer(200, orjson.dumps(count), exchange.headers([_ESTIMATED]))


async def _relay_failure(exchange: Exchange, failure: Unanswered) -> None:
    """The last credential's failure, as the client's answer (no other could serve it)."""
    headers = exchange.headers(failure.headers)
    await exchange.relay_error(failure.status, failure.body, headers)


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
    payload = {**plain(request.payload), "model": model}
    return replace(request, body=orjson.dumps(payload), payload=payload, model=model)
