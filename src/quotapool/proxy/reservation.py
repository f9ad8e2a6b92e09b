"""One request in flight on one credential, released in exactly one place."""

from __future__ import annotations

from types import TracebackType

from quotapool.clock import Clock
from quotapool.domain.outcome import Abandoned, Failed, Limited, Served, Started
from quotapool.store.base import PoolStore

Settling = Served | Limited | Failed | Abandoned


class Reservation:
    """Counts one request in flight on a credential from entry until exactly one settling
    outcome. Whatever happens in between (an unexpected event, a bug, a cancelled task, a
    client gone before its upgrade was accepted), leaving the block settles it as `Abandoned`
    if nothing else did, so an in-flight count can never leak.

        with Reservation(pool, clock, "alpha", decision.rotation) as held:
            ...
            held.settle(Served(...))   # later settlements are ignored
    """

    __slots__ = ("clock", "credential_id", "pool", "settled")

    def __init__(
        self,
        pool: PoolStore,
        clock: Clock,
        credential_id: str,
        rotation: str | None = None,
        catch_up: float = 0.0,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.credential_id = credential_id
        self.settled = False
        pool.apply(Started(credential_id, clock.now(), rotation, catch_up))

    def settle(self, outcome: Settling) -> None:
        if not self.settled:
            self.settled = True
            self.pool.apply(outcome)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.settle(Abandoned(self.credential_id, self.clock.now()))
