"""The choose-and-fail-over loop of one client request, shared by HTTP and the WebSocket bridge."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Protocol

from quotapool import tracing
from quotapool.clock import Clock
from quotapool.domain.outcome import Failed
from quotapool.domain.request import RouteRequest
from quotapool.domain.state import Status
from quotapool.proxy.record import Record
from quotapool.routing.base import Decision, Rejection
from quotapool.routing.engine import select
from quotapool.routing.profiles import Profile
from quotapool.store.base import PoolStore


class Refresher(Protocol):
    """Keeps access tokens fresh (see quotapool.accounts.refresh)."""

    def due(self, credential_id: str) -> bool: ...

    def expired(self, credential_id: str) -> bool: ...

    async def refresh(self, credential_id: str) -> bool: ...


class TokenGate:
    """Lets a credential be tried only with an access token it can use: one that is about to
    expire is refreshed first (once, however many requests wait)."""

    __slots__ = ("clock", "pool", "refresher")

    def __init__(self, refresher: Refresher | None, pool: PoolStore, clock: Clock) -> None:
        self.refresher = refresher
        self.pool = pool
        self.clock = clock

    def due(self, credential_id: str) -> bool:
        return self.refresher is not None and self.refresher.due(credential_id)

    async def ready(self, credential_id: str) -> bool:
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


@dataclass(frozen=True, slots=True)
class Chooser:
    """What every request's failover loop chooses with."""

    pool: PoolStore
    clock: Clock
    rng: random.Random
    tokens: TokenGate
    max_attempts: int


class Failover:
    """Each `next()` is the next credential to try for `request` (its access token ready), a
    `Rejection` when routing finds none, or None once `max_attempts` credentials were tried
    (by this loop: a request's fallback model gets its own).
    `failed(decision)` excludes that credential from the rest of the request. Every decision
    and attempt lands in `record`.

        failover = Failover(chooser, RouteRequest(Route.RESPONSES, "gpt-5.5"), record, profile)
        while (choice := await failover.next()) is not None:
            if isinstance(choice, Rejection): ...   # answer why
            if await try_on(choice.credential): return
            failover.failed(choice)
        ...                                          # attempts exhausted
    """

    __slots__ = ("chooser", "profile", "record", "request", "spent")

    def __init__(
        self, chooser: Chooser, request: RouteRequest, record: Record, profile: Profile
    ) -> None:
        self.chooser = chooser
        self.request = request
        self.record = record
        self.profile = profile
        self.spent = record.attempts
        """Attempts made before (for another model of the same request: each has its own)."""

    async def next(self) -> Decision | Rejection | None:
        c, record, profile = self.chooser, self.record, self.profile
        while True:
            with tracing.span("route", {"quotapool.strategy": profile.strategy.name}) as span:
                choice = select(
                    self.request,
                    profile.view(c.pool.snapshot()),
                    strategy=profile.strategy,
                    now=c.clock.now(),
                    rng=c.rng,
                    policy=profile.policy,
                )
                if span is not None:
                    span.set_attributes(_summary(choice))
            if isinstance(choice, Rejection):
                record.decisions.append(choice)
                return choice
            if record.attempts - self.spent >= c.max_attempts:
                return None
            record.decisions.append(choice)
            record.attempts += 1
            record.credential = choice.credential.name
            cid = choice.credential.id
            if c.tokens.due(cid) and not await c.tokens.ready(cid):
                self.failed(choice)
                continue
            return choice

    def failed(self, decision: Decision) -> None:
        request = self.request
        self.request = replace(request, exclude=request.exclude | {decision.credential.id})


def _summary(choice: Decision | Rejection) -> dict[str, str | int]:
    """What a trace says of a decision: the winner and why (its whole explanation is in the
    request log)."""
    if isinstance(choice, Rejection):
        return {
            "quotapool.selected": "",
            "quotapool.reason": choice.message,
            "quotapool.excluded": len(choice.excluded),
        }
    return {"quotapool.selected": choice.credential.name, "quotapool.reason": choice.reason}
