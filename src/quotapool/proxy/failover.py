"""The choose-and-fail-over loop of one client request, shared by HTTP and the WebSocket bridge."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from quotapool.domain.request import RouteRequest
from quotapool.proxy.record import Record
from quotapool.routing.base import Decision, Rejection
from quotapool.routing.engine import select
from quotapool.routing.profiles import Profile

if TYPE_CHECKING:
    from quotapool.proxy.dispatcher import Dispatcher


class Failover:
    """Each `next()` is the next credential to try for `request` (its access token ready), a
    `Rejection` when routing finds none, or None once `max_attempts` credentials were tried.
    `failed(decision)` excludes that credential from the rest of the request. Every decision
    and attempt lands in `record`.

        failover = Failover(dispatcher, RouteRequest(Route.RESPONSES, "gpt-5.5"), record, profile)
        while (choice := await failover.next()) is not None:
            if isinstance(choice, Rejection): ...   # answer why
            if await try_on(choice.credential): return
            failover.failed(choice)
        ...                                          # attempts exhausted
    """

    __slots__ = ("dispatcher", "profile", "record", "request")

    def __init__(
        self, dispatcher: Dispatcher, request: RouteRequest, record: Record, profile: Profile
    ) -> None:
        self.dispatcher = dispatcher
        self.request = request
        self.record = record
        self.profile = profile

    async def next(self) -> Decision | Rejection | None:
        d, record, profile = self.dispatcher, self.record, self.profile
        while True:
            choice = select(
                self.request,
                profile.view(d.pool.snapshot()),
                strategy=profile.strategy,
                now=d.clock.now(),
                rng=d.rng,
                policy=profile.policy,
            )
            if isinstance(choice, Rejection):
                record.decisions.append(choice)
                return choice
            if record.attempts >= d.settings.max_attempts:
                return None
            record.decisions.append(choice)
            record.attempts += 1
            record.credential = choice.credential.name
            cid = choice.credential.id
            refresher = d.refresher
            if refresher is not None and refresher.due(cid) and not await d.token_ready(cid):
                self.failed(choice)
                continue
            return choice

    def failed(self, decision: Decision) -> None:
        request = self.request
        self.request = replace(request, exclude=request.exclude | {decision.credential.id})
