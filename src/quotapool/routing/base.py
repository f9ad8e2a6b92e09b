"""The routing contract: candidates in, one choice and its reason out."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from quotapool.domain.credential import Credential
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.request import RouteRequest
from quotapool.domain.state import CredentialState


class Candidate(NamedTuple):
    """An eligible credential and its state (a tuple: made for every credential, every pick)."""

    credential: Credential
    state: CredentialState


@dataclass(frozen=True, slots=True)
class Exclusion:
    credential: str
    """The excluded credential's name."""
    reason: str
    until: float | None = None
    """When the reason ends by itself, if it does."""


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The routing knobs from configuration, as plain data the pure core can read."""

    budget_threshold: float = 95.0
    """budget-safe: prefer credentials below this primary-window use (percent)."""
    reset_bucket_seconds: float = 3600.0
    """prefer_earlier_reset: resets within one bucket count as equally early."""
    latency_min_samples: int = 3
    """least_latency: samples needed before a credential's average is trusted."""
    pinned: str | None = None
    """single: the one credential (by name) to use."""
    pricing: Mapping[str, float] = field(default_factory=dict)
    """least_cost: USD per million tokens by model."""
    in_flight_penalty: float = 2.5
    """Each request in flight counts as this many percent of used quota."""


class Context(NamedTuple):
    """Everything a strategy may read: nothing else (no clock, no global RNG).

    Made once per decision (a tuple: a frozen dataclass costs three times as much to build)."""

    request: RouteRequest
    snapshot: PoolSnapshot
    now: float
    rng: random.Random
    policy: RoutingPolicy


Scores = tuple[str, dict[str, float]]
"""What a strategy ranked by, and each candidate's value."""


class Detail(NamedTuple):
    """A decision's candidates, exclusions and scores: what its explanation lists."""

    candidates: tuple[str, ...]
    excluded: tuple[Exclusion, ...]
    scores: Scores | None
    omitted: tuple[int, int] = (0, 0)
    """Candidates and exclusions a bounded explanation left out."""


TRIED = "already tried for this request"
"""How an exclusion of a credential a failed attempt used begins (kept in any bound)."""


def kept(count: int, limit: int, must: Callable[[int], bool]) -> list[int]:
    """Which of `count` items a list bounded to `limit` keeps, in order: every one `must`
    marks, then the first others.

    >>> kept(5, 3, lambda i: i == 4)
    [0, 1, 4]
    """
    if count <= limit:
        return list(range(count))
    musts = [i for i in range(count) if must(i)]
    room = limit - len(musts)
    others = [i for i in range(count) if not must(i)][: max(0, room)]
    return sorted(musts + others)


def bounded(detail: Detail, limit: int, winner: str) -> Detail:
    """At most `limit` candidates (the winner among them) and exclusions (every credential a
    failed attempt already tried among them), the scores of those candidates."""
    candidates, excluded, scores = detail.candidates, detail.excluded, detail.scores
    if len(candidates) <= limit and len(excluded) <= limit:
        return detail
    named = [candidates[i] for i in kept(len(candidates), limit, lambda i: candidates[i] == winner)]
    out = [
        excluded[i]
        for i in kept(len(excluded), limit, lambda i: excluded[i].reason.startswith(TRIED))
    ]
    if scores is not None:
        scores = (scores[0], {name: scores[1][name] for name in named if name in scores[1]})
    omitted = (len(candidates) - len(named), len(excluded) - len(out))
    return Detail(tuple(named), tuple(out), scores, omitted)


class Pick(NamedTuple):
    """A strategy's answer: the winner, why it won, and who a modifier set aside."""

    winner: Candidate
    reason: str
    excluded: tuple[Exclusion, ...] = ()
    scores: Scores | None = None
    """What the strategy ranked by, and each candidate's value (why the others lost)."""
    catch_up: float = 0.0
    """The winner's rotation counter is raised to this first (see `Started.catch_up`)."""


class Strategy(Protocol):
    """Picks one of the eligible candidates (never empty) and says why; None when none of
    them is acceptable (the request is then rejected).

    Strategies are pure: everything they read comes from their arguments. Modifiers are
    strategies that narrow the candidates and delegate to the strategy they wrap.

    >>> class First:
    ...     name = "first"
    ...     def pick(self, candidates, ctx):
    ...         return Pick(candidates[0], "first eligible")
    """

    name: str

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None: ...


class Decision:
    """Which credential serves a request, and the whole explanation.

    The explanation's lists (candidates, exclusions, scores) are given, or built when first
    read from `later` (a decision over a large pool: `routing.index`), so a request whose
    explanation nobody reads never pays for it."""

    __slots__ = ("_detail", "_later", "catch_up", "credential", "reason", "rotation", "strategy")

    def __init__(
        self,
        credential: Credential,
        strategy: str,
        reason: str,
        candidates: tuple[str, ...] = (),
        excluded: tuple[Exclusion, ...] = (),
        scores: Scores | None = None,
        rotation: str | None = None,
        catch_up: float = 0.0,
        *,
        later: Callable[[int | None], Detail] | None = None,
    ) -> None:
        self.credential = credential
        self.strategy = strategy
        self.reason = reason
        """Why the winner won, in the strategy's words."""
        self.rotation = rotation
        """The rotation the selection counts toward; None when no strategy chose (a probe, the
        owner of a continuation), so no counter moves."""
        self.catch_up = catch_up
        self._detail = None if later else Detail(candidates, excluded, scores)
        self._later = later
        """Builds the explanation, whole or bounded to a number of entries per list."""

    def _explained(self) -> Detail:
        if self._detail is None:
            assert self._later is not None
            self._detail, self._later = self._later(None), None
        return self._detail

    @property
    def candidates(self) -> tuple[str, ...]:
        return self._explained()[0]

    @property
    def excluded(self) -> tuple[Exclusion, ...]:
        return self._explained()[1]

    @property
    def scores(self) -> Scores | None:
        return self._explained()[2]

    @property
    def route_header(self) -> str:
        return f"{self.strategy}; credential={self.credential.name}"

    def explain(self, limit: int | None = None) -> dict[str, Any]:
        """The explanation; with `limit`, at most that many candidates and exclusions (the
        request log's, so that a decision over a thousand credentials stays a short row)."""
        if limit is None:
            detail = self._explained()
        elif self._later is not None:
            detail = self._later(limit)
        else:
            detail = bounded(self._explained(), limit, self.credential.name)
        candidates, excluded, scores, omitted = detail
        explained: dict[str, Any] = {
            "strategy": self.strategy,
            "selected": self.credential.name,
            "reason": self.reason,
            "candidates": list(candidates),
            "excluded": [
                {"credential": e.credential, "reason": e.reason, "until": e.until} for e in excluded
            ],
        }
        if scores is not None:
            explained["ranked_by"], explained["scores"] = scores
        if any(omitted):
            explained["omitted"] = {"candidates": omitted[0], "excluded": omitted[1]}
        return explained

    def __repr__(self) -> str:
        return f"Decision({self.credential.name!r}, {self.strategy!r}, {self.reason!r})"


@dataclass(frozen=True, slots=True)
class Rejection:
    """No credential can serve the request now."""

    strategy: str
    message: str
    excluded: tuple[Exclusion, ...]
    retry_at: float | None
    """The soonest time a matching credential comes back by itself; None if none will."""
    no_match: bool
    """True when no credential in the pool serves this route and model at all."""
    outage: bool = False
    """A matching credential is out because its upstream fails (not because of limits)."""
    param: str | None = None
    """Set when every matching credential cannot honour a parameter of the request (a 400):
    the first such parameter."""
    reserved: bool = False
    """Only Claude subscriptions kept for Claude Code could serve it, and another client asked
    (a 403)."""

    def explain(self, limit: int | None = None) -> dict[str, Any]:
        excluded, omitted = self.excluded, 0
        if limit is not None:
            detail = bounded(Detail((), excluded, None), limit, "")
            excluded, omitted = detail.excluded, detail.omitted[1]
        explained: dict[str, Any] = {
            "strategy": self.strategy,
            "selected": None,
            "reason": self.message,
            "candidates": [],
            "excluded": [
                {"credential": e.credential, "reason": e.reason, "until": e.until} for e in excluded
            ],
        }
        if omitted:
            explained["omitted"] = {"candidates": 0, "excluded": omitted}
        return explained
