"""Eligibility: why a credential cannot take a request right now. Pure."""

from __future__ import annotations

from quotapool.domain.credential import Credential, Kind, native
from quotapool.domain.request import CLAUDE_CODE, RouteRequest
from quotapool.domain.state import OUT_OF_SERVICE, CredentialState, Status
from quotapool.routing.base import TRIED, Exclusion


def mismatch(credential: Credential, request: RouteRequest) -> str | None:
    """Why the credential can never serve this request (kind or model), if it cannot."""
    if reserved(credential, request):
        return "a Claude subscription serves Claude Code only (unless serve_any_client = true)"
    route = request.route
    if route not in credential.routes:
        offers = ", ".join(sorted(credential.apis))
        return f"its upstream ({credential.kind}: {offers}) cannot serve the {route} API"
    if route not in credential.any_model_routes and not native(credential, request.model):
        maker = (
            "a Gemini key serves Gemini"
            if credential.kind is Kind.GEMINI
            else ("an Anthropic key serves Claude")
        )
        return f"{maker} models on the {route} API (or the models it lists)"
    model = request.model
    if request.stand_in is not None and not native(credential, model):
        model = request.stand_in
    if not credential.serves(model):
        return f"model {model} not served"
    return None


def reserved(credential: Credential, request: RouteRequest) -> bool:
    """A Claude subscription kept for Claude Code, asked by another client."""
    return (
        credential.kind is Kind.CLAUDE
        and not credential.serve_any_client
        and request.agent != CLAUDE_CODE
    )


def available(state: CredentialState, now: float) -> bool:
    """Not paused, not limited, not backing off at `now` (whatever the request)."""
    return (
        state.status not in OUT_OF_SERVICE
        and not state.limited_at(now)
        and state.backoff_until <= now
    )


def _limit_applies(state: CredentialState, request: RouteRequest, now: float) -> bool:
    # A gated model has its own quota: the standard window being exhausted does not stop it.
    bypass = request.additional_limit is not None and state.status is Status.QUOTA_EXCEEDED
    return state.limited_at(now) and not bypass


def exclusion(
    credential: Credential, state: CredentialState, request: RouteRequest, now: float
) -> Exclusion | None:
    """The reason `credential` is not a candidate for `request` at `now`, or None."""
    name = credential.name
    if credential.id in request.exclude:
        detail = f": {state.reason}" if state.reason else ""
        return Exclusion(name, f"{TRIED}{detail}")
    if (why := mismatch(credential, request)) is not None:
        return Exclusion(name, why)
    if (unfit := request.unfit.get(credential.id)) is not None:
        return Exclusion(name, f"cannot carry {unfit.why}")
    if state.status in OUT_OF_SERVICE:
        detail = f": {state.reason}" if state.reason else ""
        return Exclusion(name, f"{state.status.value}{detail}")
    if _limit_applies(state, request, now):
        detail = f": {state.reason}" if state.reason else ""
        return Exclusion(name, f"{state.status.value}{detail}", state.until)
    cooldown = state.model_cooldowns.get(request.model, 0.0)
    if cooldown > now:
        return Exclusion(name, f"cooling down for {request.model}", cooldown)
    if state.backoff_until > now:
        failures = state.consecutive_failures
        return Exclusion(
            name, f"error backoff after {failures} failure(s): {state.reason}", state.backoff_until
        )
    if probing(state):
        return Exclusion(name, f"{PROBING}: {state.reason}")
    return None


PROBING = "a probe is in flight after failures (one request at a time until one succeeds)"


def probing(state: CredentialState) -> bool:
    """A failing credential takes one request at a time (a circuit breaker's half-open state):
    an outage costs one upstream call per credential, not one per client request."""
    return state.consecutive_failures > 0 and state.in_flight > 0


def failing(state: CredentialState, now: float) -> bool:
    """Out because its upstream fails (errors, not limits or quota)."""
    return (
        state.consecutive_failures > 0
        and state.status not in OUT_OF_SERVICE
        and not state.limited_at(now)
    )


def comes_back_at(state: CredentialState, request: RouteRequest, now: float) -> float | None:
    """When a credential that is out now becomes eligible by itself; None if it won't."""
    if state.status in OUT_OF_SERVICE:
        return None
    limit = state.until if _limit_applies(state, request, now) else None
    cooldown = state.model_cooldowns.get(request.model)
    later = [t for t in (limit, cooldown, state.backoff_until) if t is not None and t > now]
    return max(later) if later else None
