"""`select(request, snapshot, *, strategy, now, rng) -> Decision | Rejection`. Pure."""

from __future__ import annotations

import random
from dataclasses import replace

from quotapool.domain.credential import Kind, native
from quotapool.domain.pool import FRESH, PoolSnapshot
from quotapool.domain.request import CLAUDE_CODE, DEFAULT_PROFILE, RouteRequest
from quotapool.domain.state import Status
from quotapool.routing.base import (
    Candidate,
    Context,
    Decision,
    Exclusion,
    Rejection,
    RoutingPolicy,
    Strategy,
)
from quotapool.routing.filters import comes_back_at, exclusion, failing, mismatch, reserved
from quotapool.routing.index import decide

DEFAULT_POLICY = RoutingPolicy()
ACTIVE = Status.ACTIVE
CLAUDE = Kind.CLAUDE
_candidate = tuple.__new__
"""`Candidate(credential, state)` at a third of the cost (once per candidate per decision)."""


def select(
    request: RouteRequest,
    snapshot: PoolSnapshot,
    *,
    strategy: Strategy,
    now: float,
    rng: random.Random,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> Decision | Rejection:
    """Choose the credential for `request`, or say why none can serve it.

    When every matching credential is in error backoff, the first attempt of a request probes
    the least recently failed one that has nothing in flight (a pool that only backs off would
    never find out it recovered); a request whose attempt failed is not sent on to another
    failing credential, so an outage costs at most one upstream call per client request.
    """
    if request.owner is not None:
        return _owned(request, snapshot, strategy.name, now)
    ctx = Context(request, snapshot, now, rng, policy)
    if (indexed := decide(request, snapshot, strategy, now, ctx)) is not None:
        return indexed
    candidates: list[Candidate] = []
    excluded: list[Exclusion] = []
    backing_off: list[Candidate] = []
    states, fresh = snapshot.states, FRESH
    model, route, tried, unfit = request.model, request.route, request.exclude, request.unfit
    claude_code = request.agent == CLAUDE_CODE  # (a subscription serves it: `reserved`)
    for credential in snapshot.credentials:
        state = states.get(credential.id, fresh)
        # Fast path for the common case: an active, healthy credential that serves the request.
        if (
            state.status is ACTIVE
            and state.backoff_until <= now
            and route in credential.any_model_routes
            and (not credential.models or model in credential.models)
            and credential.id not in tried
            and (not unfit or credential.id not in unfit)
            and (not state.model_cooldowns or state.model_cooldowns.get(model, 0.0) <= now)
            and (not state.consecutive_failures or not state.in_flight)
            and (credential.kind is not CLAUDE or claude_code or credential.serve_any_client)
        ):
            candidates.append(_candidate(Candidate, (credential, state)))
            continue
        why = exclusion(credential, state, request, now)
        if why is None:
            candidates.append(_candidate(Candidate, (credential, state)))
            continue
        excluded.append(why)
        if why.reason.startswith("error backoff") and not state.in_flight:
            backing_off.append(Candidate(credential, state))
    if not candidates:
        if (
            backing_off
            and not tried
            and len(backing_off)
            == sum(1 for c in snapshot.credentials if mismatch(c, request) is None)
        ):
            winner = min(backing_off, key=lambda c: (c.state.last_failure_at, c.credential.id))
            return Decision(
                winner.credential,
                strategy.name,
                "probe: every candidate is backing off; least recently failed",
                (winner.credential.name,),
                tuple(e for e in excluded if e.credential != winner.credential.name),
            )
        return _reject(request, snapshot, strategy.name, tuple(excluded), now)
    if request.stand_in is not None:
        candidates = _native_first(candidates, excluded, request.model)
    pick = strategy.pick(candidates, ctx)
    if pick is None:
        return _reject(request, snapshot, strategy.name, tuple(excluded), now, no_pick=True)
    chosen = {e.credential for e in pick.excluded}
    return Decision(
        credential=pick.winner.credential,
        strategy=strategy.name,
        reason=pick.reason,
        candidates=tuple(c.credential.name for c in candidates if c.credential.name not in chosen),
        excluded=tuple(excluded) + pick.excluded,
        scores=pick.scores,
        rotation=request.rotation,
        catch_up=pick.catch_up,
    )


def _native_first(
    candidates: list[Candidate], excluded: list[Exclusion], model: str
) -> list[Candidate]:
    """A Claude (Gemini) model goes to an Anthropic (Gemini) key that can serve it; credentials
    serving a stand-in (`claude_models`, `gemini_models`) only when none can."""
    own = [c for c in candidates if native(c.credential, model)]
    if not own or len(own) == len(candidates):
        return candidates
    maker = "a Gemini key" if model.startswith("gemini") else "an Anthropic key"
    reason = f"serves a stand-in for {model}; {maker} serves it itself"
    excluded += [Exclusion(c.credential.name, reason) for c in candidates if c not in own]
    return own


def _owned(
    request: RouteRequest, snapshot: PoolSnapshot, strategy: str, now: float
) -> Decision | Rejection:
    """A continuation of a response only its account knows: that account or nobody."""
    others = tuple(
        Exclusion(c.name, "the previous response belongs to another account")
        for c in snapshot.credentials
        if c.id != request.owner
    )
    owner = snapshot.by_id(request.owner or "")
    if owner is None:
        message = "the account that produced previous_response_id is no longer in the pool"
        return Rejection(strategy, message, others, None, False)
    state = snapshot.state(owner.id)
    why = exclusion(owner, state, replace(request, exclude=frozenset()), now)
    if why is None:
        return Decision(owner, strategy, "owns previous_response_id", (owner.name,), others)
    message = (
        f"the previous response (previous_response_id) belongs to {owner.name}, which is "
        "unavailable; resend the whole conversation without previous_response_id to go on "
        "with another account"
    )
    back = comes_back_at(state, request, now)
    return Rejection(strategy, message, (why,), back, False, outage=failing(state, now))


def _where(request: RouteRequest) -> str:
    profile = request.profile
    return "in the pool" if profile == DEFAULT_PROFILE else f"of routing profile {profile!r}"


def _reject(
    request: RouteRequest,
    snapshot: PoolSnapshot,
    strategy: str,
    excluded: tuple[Exclusion, ...],
    now: float,
    *,
    no_pick: bool = False,
) -> Rejection:
    matching = [c for c in snapshot.credentials if mismatch(c, request) is None]
    if not snapshot.credentials and request.profile == DEFAULT_PROFILE:
        message = (
            "the pool is empty: add [[credentials]] to quotapool.toml, or accounts with "
            "`quotapool accounts import`, `login` or `add-key`"
        )
        return Rejection(strategy, message, excluded, retry_at=None, no_match=False)
    kept = [c for c in snapshot.credentials if reserved(c, request)]
    # Would a subscription serve it, were it open to every client?
    if not matching and any(
        mismatch(replace(c, serve_any_client=True), request) is None for c in kept
    ):
        message = (
            f"only Claude subscriptions {_where(request)} serve model {request.model!r}, and "
            "a subscription serves Claude Code only: add an Anthropic API key for other "
            "clients, or set serve_any_client = true on the subscription"
        )
        return Rejection(strategy, message, excluded, None, False, reserved=True)
    if not matching:
        return Rejection(
            strategy,
            f"no credential {_where(request)} serves model {request.model!r} "
            f"on the {request.route} API",
            excluded,
            retry_at=None,
            no_match=True,
        )
    if all(c.id in request.unfit for c in matching):
        unfit = sorted({request.unfit[c.id] for c in matching}, key=lambda u: u.why)
        message = f"no credential {_where(request)} can honour every parameter: " + "; ".join(
            u.why for u in unfit
        )
        return Rejection(strategy, message, excluded, None, False, param=unfit[0].params[0])
    if no_pick:
        return Rejection(strategy, "the pinned credential is unavailable", excluded, None, False)
    states = [snapshot.state(c.id) for c in matching]
    resets = [t for state in states if (t := comes_back_at(state, request, now)) is not None]
    outage = any(failing(state, now) for state in states)
    message = (
        "the upstream of every credential that serves this model is failing or backing off"
        if outage
        else "every credential that serves this model is rate limited or out of quota"
    )
    return Rejection(
        strategy,
        message,
        excluded,
        retry_at=min(resets) if resets else None,
        no_match=False,
        outage=outage,
    )
