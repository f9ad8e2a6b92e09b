"""Client keys at the edge: who is asking, may they ask for this, and how much is left.

Nothing here runs until the first key exists (or `require_client_keys` is set): a pool without
keys pays nothing for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from quotapool.clock import Clock
from quotapool.domain.client import ClientKey, Limit, Measure, Period, key_hash, number
from quotapool.proxy.errors import Dialect, ErrorResponse, error, retry_headers
from quotapool.store.client_keys import ClientKeyStore
from quotapool.store.usage import Spent, cost_of, spent
from quotapool.tasks import Outage

log = logging.getLogger(__name__)
HOW_TO_GET_ONE = "an operator creates one with `quotapool keys create NAME`"
RELOOK_SECONDS = 0.25
"""How often keys not known here make the ring look at the database again (at most)."""
_BEARER = b"bearer "


def presented(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key a client sent, however its SDK sends it: `Authorization: Bearer …` (OpenAI
    SDKs, the Codex CLI in both modes), `x-api-key` (Anthropic SDKs, Claude Code) or
    `x-goog-api-key` (Gemini SDKs and CLI; a `?key=` becomes it at the edge)."""
    for name, value in headers:
        if name in (b"x-api-key", b"x-goog-api-key") and value:
            return value.decode("latin-1")
        if name == b"authorization" and value[:7].lower() == _BEARER:
            return value[7:].strip().decode("latin-1")
    return None


class SharedCounts(Protocol):
    """Request counters all replicas take from atomically (`store.redis.replication`)."""

    async def take(self, counters: list[str], amounts: list[int], seeds: list[int]) -> int | None:
        """One more request on each counter if none would pass its amount (-1); else the
        position of one that is full, and none taken. None when they cannot be reached. A
        counter not yet made starts at its seed (what this replica counted in that window)."""
        ...

    def give_back(self, counters: list[str]) -> None:
        """One request less on each counter (it never reached an upstream)."""
        ...


class KeyRing:
    """The keys as loaded from the database, and what each has spent in its current windows
    (counted from the same rows the request log gets, so a restart reads them back).

    A request is counted against its key's request limits when it is admitted, so concurrent
    requests cannot pass a limit together, and given back if it never reached an upstream; with
    replicas, shared counters decide (atomically, across all of them). Tokens and cost are known
    when a request ends and are counted then."""

    def __init__(
        self, store: ClientKeyStore, clock: Clock, prices: Mapping[str, float], require: bool
    ) -> None:
        self.store = store
        self.clock = clock
        self.prices = prices
        self.require = require
        self._by_hash: dict[str, ClientKey] = {}
        self._by_name: dict[str, ClientKey] = {}
        self._spent: dict[tuple[str, Period], tuple[float, Spent]] = {}
        """(key name, period) → (start of its current window, what was spent in it)."""
        self._version: tuple[int, int, str | None] | None = None
        self._admin: str | None = None
        self.local: str | None = None
        """The hash of the token in the run file, for the CLI on this machine."""
        self.on_spent: Callable[[str, int, int, float, float], None] | None = None
        """Told of each request counted here (key, requests, tokens, cost, at): replicas share
        them."""
        self.shared: SharedCounts | None = None
        self._reserved: dict[str, tuple[str, list[str]]] = {}
        """Request id → (key name, shared counters) of requests counted when admitted."""
        self._confirming: dict[str, int] = {}
        """Key name → its requests admitted here and not yet confirmed by the shared counters
        (left out of the seed a new shared counter starts from: each adds itself)."""
        self.required = require
        """Clients must send a key: one exists, or the configuration says so."""
        self._reading = asyncio.Lock()
        """Held by a look at the database (the watch's or a request's)."""
        self._looks = 0
        self._next_look = 0.0

    def load(self) -> None:
        keys = self.store.all()
        self._version = self.store.version()
        self._admin = self._version[2]
        self._by_hash = {k.hash: k for k in keys}
        self._by_name = {k.name: k for k in keys}
        self.required = self.require or bool(keys)
        now = self.clock.now()
        for key in keys:
            for period in {limit.period for limit in key.limits}:
                start = period.window(now)[0]
                if self._spent.get((key.name, period), (None,))[0] != start:
                    used = spent(self.store.engine, key.name, start, self.prices)
                    self._spent[(key.name, period)] = (start, used)

    async def watch(self, interval: float) -> None:
        """Pick up keys created, rotated or revoked by the CLI while running."""
        outage = Outage(log, "reading client keys from the database")
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._reading:
                    await self._look()
            except Exception as exc:
                outage.failed(exc)
            else:
                outage.ok()

    async def caught_up(self) -> bool:
        """Whether the keys changed in the database since this request arrived (now loaded):
        asked when its key is not known here, as for a key the CLI created a moment ago,
        before the watch saw it. It waits for a look begun after it arrived — at most one per
        `RELOOK_SECONDS`, shared by everyone who arrived before it began — so a key created
        before the request is always found. A database that cannot be read says no (the
        watch reports it)."""
        loaded, arrived = self._version, self._looks
        async with self._reading:
            if self._looks == arrived:  # no look began since it arrived: one now
                if (wait := self._next_look - self.clock.monotonic()) > 0:
                    await asyncio.sleep(wait)
                with contextlib.suppress(Exception):
                    await self._look()
            return self._version != loaded

    async def _look(self) -> None:
        """Read the keys anew if the database holds others (with `_reading` held)."""
        self._looks += 1
        self._next_look = self.clock.monotonic() + RELOOK_SECONDS
        if await asyncio.to_thread(self.store.version) != self._version:
            await asyncio.to_thread(self.load)
            log.info("client keys reloaded: %d", len(self._by_name))

    def identify(
        self, headers: list[tuple[bytes, bytes]], dialect: Dialect
    ) -> ClientKey | ErrorResponse:
        """The key the request carries, or the 401 that says what is wrong with it."""
        token = presented(headers)
        if token is None:
            message = f"This quotapool needs a client key, sent as the API key; {HOW_TO_GET_ONE}."
            return _unauthorized(dialect, message)
        digest = key_hash(token)
        key = self._by_hash.get(digest)
        if key is None or not hmac.compare_digest(key.hash, digest):
            message = f"The client key is not valid here; {HOW_TO_GET_ONE}."
            return _unauthorized(dialect, message)
        return _unusable(key, self.clock.now(), dialect) or key

    def still_valid(self, key: ClientKey, dialect: Dialect) -> ClientKey | ErrorResponse:
        """The key as it is now (a long-lived connection asks at each turn), or the 401 that
        says it was revoked, rotated or has expired since the connection was admitted."""
        current = self._by_name.get(key.name)
        if current is None or current.hash != key.hash:
            message = (
                f"The client key {key.name!r} was rotated or removed; connect again with its "
                "new secret."
            )
            return _unauthorized(dialect, message)
        return _unusable(current, self.clock.now(), dialect) or current

    @property
    def admin_hash(self) -> str | None:
        """The hash of the admin token as last read (None until one is made)."""
        return self._admin

    def is_admin(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """The request carries the admin token (`quotapool admin token`), or the token of the
        run file (the CLI on this machine)."""
        return self.admin_by(headers) is not None

    def admin_by(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """Which admin token the request carries: "admin token", "cli" (the run file's), or
        None."""
        token = presented(headers)
        if token is None:
            return None
        digest = key_hash(token)
        for name, known in (("admin token", self._admin), ("cli", self.local)):
            if known is not None and hmac.compare_digest(digest, known):
                return name
        return None

    def admit(
        self, key: ClientKey, model: str | None, dialect: Dialect, request_id: str | None = None
    ) -> ErrorResponse | None:
        """Refuse a model the key may not use (403) or a request over one of its limits
        (429, with when it resets); None to go on. `model` None: not known yet (a WebSocket's
        turns name theirs). With `request_id`, the request is counted against the key's
        request limits now (`count` settles it when it ends)."""
        if model is not None and key.models and model not in key.models:
            allowed = ", ".join(sorted(key.models))
            message = f"This client key may use only: {allowed} (not {model!r})."
            return error(dialect, 403, message, param="model", code="model_not_allowed")
        now = self.clock.now()
        for limit in key.limits:
            used = self._current(key.name, limit.period, now).of(limit.measure)
            if used >= limit.amount:
                return _over(limit, used, now, dialect)
        if request_id is not None and any(x.measure is Measure.REQUESTS for x in key.limits):
            self._reserved[request_id] = (key.name, [])
            self.spend(key.name, 1, 0, 0.0, now)
            if self.shared is not None:
                self._confirming[key.name] = self._confirming.get(key.name, 0) + 1
        return None

    async def confirm(
        self, key: ClientKey, request_id: str, dialect: Dialect
    ) -> ErrorResponse | None:
        """With replicas, the shared counters' word on an admitted request's request limits
        (the 429 of the first it would pass); None to go on, or when they cannot be reached
        (the local count decided)."""
        if self.shared is None or request_id not in self._reserved:
            return None
        now = self.clock.now()
        limits = [limit for limit in key.limits if limit.measure is Measure.REQUESTS]
        counters = [f"{key.name}:{x.period.value}:{int(x.window(now)[0])}" for x in limits]
        # Requests admitted here but not yet confirmed are not in the seed: each one takes
        # its own place (counting them twice admitted one less than the limit).
        unconfirmed = self._confirming.get(key.name, 0)
        here = [int(self._current(key.name, x.period, now).requests) - unconfirmed for x in limits]
        try:
            taken = await self.shared.take(counters, [int(x.amount) for x in limits], here)
        finally:
            self._confirmed(key.name)
        if taken is None:
            return None
        if taken < 0:
            self._reserved[request_id] = (key.name, counters)
            return None
        del self._reserved[request_id]
        self.spend(key.name, -1, 0, 0.0, now)
        return _over(limits[taken], limits[taken].amount, now, dialect)

    def _confirmed(self, name: str) -> None:
        left = self._confirming.get(name, 0) - 1
        if left > 0:
            self._confirming[name] = left
        else:
            self._confirming.pop(name, None)

    def count(self, row: Mapping[str, Any]) -> None:
        """Add one logged request to its key's windows (requests that reached an upstream);
        one counted when admitted that did not reach one is given back."""
        if row.get("status") == 101:
            return  # a WebSocket's own row: its turns are its requests, each with a row
        reserved = self._reserved.pop(row.get("request_id") or "", None)
        key = self._by_name.get(row.get("client_key") or "")
        now = self.clock.now()
        if not row.get("attempts"):
            if reserved is not None:
                self.spend(reserved[0], -1, 0, 0.0, now)
                if reserved[1] and self.shared is not None:
                    self.shared.give_back(reserved[1])
            return
        if key is None or not key.limits:
            return
        tokens = (row.get("input_tokens") or 0) + (row.get("output_tokens") or 0)
        cost = cost_of(row.get("sent_model"), tokens, self.prices)
        self.spend(key.name, 0 if reserved else 1, tokens, cost, now)
        if self.on_spent is not None:
            self.on_spent(key.name, 1, tokens, cost, now)

    def spend(self, name: str, requests: int, tokens: int, cost: float, at: float) -> None:
        """Requests of key `name` at `at`, in its windows (here, or on another replica)."""
        key = self._by_name.get(name)
        if key is None:
            return
        for period in {limit.period for limit in key.limits}:
            start = period.window(at)[0]
            if start != period.window(self.clock.now())[0]:
                continue  # a window that has ended
            used = self._current(name, period, at)
            self._spent[(name, period)] = (start, used.plus(requests, tokens, cost))

    def usage(self, key: ClientKey) -> list[dict[str, Any]]:
        """What the key used against each of its limits, and when each window resets."""
        now = self.clock.now()
        return [
            {
                "limit": str(limit),
                "used": self._current(key.name, limit.period, now).of(limit.measure),
                "amount": limit.amount,
                "resets_at": limit.window(now)[1],
            }
            for limit in key.limits
        ]

    def _current(self, name: str, period: Period, now: float) -> Spent:
        """What the key spent in the window of `period` that holds `now`."""
        start, used = self._spent.get((name, period), (None, Spent()))
        return used if start == period.window(now)[0] else Spent()


def _unusable(key: ClientKey, now: float, dialect: Dialect) -> ErrorResponse | None:
    """The 401 of a key that was revoked or has expired; None while it is usable."""
    if key.usable_at(now):
        return None
    why = (
        "was revoked"
        if key.revoked_at is not None
        else f"expired at {_when(key.expires_at or now)}"
    )
    message = f"The client key {key.name!r} {why}; ask for a new one."
    return _unauthorized(dialect, message)


def _unauthorized(dialect: Dialect, message: str) -> ErrorResponse:
    """A 401 no SDK should retry (Claude Code retried one eleven times in silence)."""
    refused = error(dialect, 401, message, code="invalid_api_key")
    return ErrorResponse(401, refused.body, ((b"x-should-retry", b"false"),))


def _over(limit: Limit, used: float, now: float, dialect: Dialect) -> ErrorResponse:
    """The 429 of a request over `limit`, with when it resets."""
    end = limit.window(now)[1]
    message = (
        f"{limit.describe().capitalize()} is used up ({_amount_text(limit, used)}); it resets "
        f"at {_when(end)}. The pool itself is not exhausted: other keys are served."
    )
    refused = error(dialect, 429, message, code="key_limit_reached")
    return ErrorResponse(429, refused.body, retry_headers(max(1, int(end - now + 0.999))))


def _amount_text(limit: Limit, used: float) -> str:
    if limit.measure is Measure.COST:
        return f"${used:.2f} of ${number(limit.amount)}"
    return f"{number(float(used))} of {number(limit.amount)}"


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
