"""Replicas of one pool (workers of one machine, servers behind a load balancer) share what
they learn through Redis, and route from their own copy: no Redis round trip on the way to a
decision.

- Every outcome a replica applies (a 429, a quota reading, a failure, a pause…) is appended to
  a Redis stream; every other replica folds it into its copy with the same reducer
  (`reducer.apply_elsewhere`: in-flight counts stay each replica's own). So is every change of
  a conversation's binding or a response id's owner. The reader blocks on the stream, so a limit
  learned by one replica is known to the others within milliseconds.
- One replica holds a leader lease (a key with a TTL, renewed): it checkpoints the pool state
  into a hash each second, with the stream position it covers, and runs the jobs only one
  replica may run (the usage poller). When it dies, another takes the lease within `lease`
  seconds.
- A replica that starts adopts the checkpoint, then folds the stream from the position it
  covers; one that reconnects after an outage folds what it missed. The stream keeps the last
  `keep_seconds` of entries (its memory follows the traffic, not a count of entries whose size
  grows with it); a replica that was away longer, and so missed entries, adopts the checkpoint
  again. Its own outcomes the checkpoint does not hold yet are folded back from the stream as
  they are published.
- Each event is folded once. A replica numbers what it learns; an entry says the number of its
  first event. An entry whose XADD reply was lost is sent again as it was, and its copy is
  skipped; outcomes the adopted checkpoint already holds (it says, per replica, up to which
  number) are skipped too. A count folded twice would skew `served` and round-robin's
  rotation.
- Redis down: the replica serves from its own copy, keeps what it learns (bounded) to publish
  later, says so once in the log and in `/ready`, and reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from quotapool.clock import Clock
from quotapool.domain.outcome import Abandoned, BusyElsewhere, Outcome
from quotapool.domain.pool import PoolSnapshot
from quotapool.store.affinity import PersistentAffinityStore
from quotapool.store.memory import MemoryPoolStore
from quotapool.store.redis.codec import decode_outcome, decode_state, encode_outcome, encode_state
from quotapool.store.redis.counters import KeyCounters
from quotapool.store.redis.leases import RELEASE, Leases
from quotapool.tasks import Outage, until_one_fails

if TYPE_CHECKING:
    from quotapool.control.keys import SharedCounts

log = logging.getLogger(__name__)

STREAM = "quotapool:events"
STATES = "quotapool:states"
LEADER = "quotapool:leader"
POSITION = b"~position"
"""The checkpoint's field holding the stream position it covers."""
COVERED = b"~covered"
"""The checkpoint's field saying, per replica, the last event whose outcome it holds."""
GATHER_SECONDS = 0.02
"""Events are written, and read, at most once per this interval (each write and read costs a
round trip whatever it carries; at a few hundred requests a second that adds up)."""
CLOSE_SECONDS = 1.0
"""How long a stopping replica tries to publish what it has not yet."""
BUSY = "quotapool:busy:"
REPLICAS = "quotapool:replicas"
BUSY_TTL_MS = 2_000
BUSY_INTERVAL_SECONDS = 0.25
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
Entries = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]
"""What XREAD answers: per stream, its (entry id, fields) in order. An entry is one replica's
batch: `replica`, `first` (the number of its first event) and `events` (a JSON array)."""


class Spending(Protocol):
    """Client keys' spending against their limits (`proxy.keys.KeyRing`)."""

    on_spent: Callable[[str, int, int, float, float], None] | None
    shared: SharedCounts | None

    def spend(self, name: str, requests: int, tokens: int, cost: float, at: float) -> None: ...


class Choices(Protocol):
    """Routing strategies chosen while running (`control.routing.LiveRouting`)."""

    on_chosen: Callable[[str, str | None], None] | None

    def adopt(self, profile: str, strategy: str | None) -> None: ...


class Replication:
    """This replica's side of the sharing (see the module's docstring): it observes the pool,
    the conversations and the client keys, publishes what they learn, and folds what the other
    replicas published."""

    def __init__(
        self,
        url: str,
        pool: MemoryPoolStore,
        clock: Clock,
        affinity: PersistentAffinityStore | None = None,
        keys: Spending | None = None,
        routing: Choices | None = None,
        *,
        lease: float = 5.0,
        keep_seconds: float = 60.0,
        backlog: int = 50_000,
    ) -> None:
        self.url = url
        self.redis = self._client()
        self.pool = pool
        self.clock = clock
        self.affinity = affinity
        self.lease = lease
        self.keep_seconds = keep_seconds
        self.replica = uuid.uuid4().hex[:12]
        self._me = self.replica.encode()
        self._learnt_count = 0
        """The number of the last event this replica learnt (its events are numbered from 1)."""
        self._out: deque[bytes] = deque(maxlen=backlog)
        """What this replica learnt and has not published yet (oldest dropped past `backlog`):
        events `_learnt_count - len(_out) + 1` to `_learnt_count`."""
        self._unsent: tuple[dict[str, bytes], int] | None = None
        """An entry (and how many events it holds) whose XADD failed: it may have reached Redis,
        so it is sent again as it was (the others skip a copy by its numbers)."""
        self._folded_to: dict[bytes, int] = {}
        """Per other replica: the number of the last event folded."""
        self._adopted_to: dict[bytes, int] = {}
        """Per replica: the number of the last event whose outcome the adopted checkpoint held."""
        self._refold = (0, 0)
        """This replica's own events folded back when read (the adopted state replaced them):
        numbers above the first, up to the second."""
        self._wake = asyncio.Event()
        self.position: bytes | None = None
        """The last stream entry folded (None before the first connection)."""
        self.connected = False
        self.tried = False
        """A connection was attempted (before that, `/ready` says "connecting")."""
        self.leader = False
        self.replicas: tuple[str, ...] = ()
        """The replicas heard from in the last minute (this one too), as last read."""
        self.folded = self.published = self.dropped = self.resyncs = 0
        self._outage = Outage(log, f"sharing the pool through Redis ({url.split('@')[-1]})")
        pool.observers.append(self._learnt)
        if affinity is not None:
            affinity.on_change = self._bound
        self.keys = keys
        if keys is not None:
            keys.on_spent = self._spent
            keys.shared = KeyCounters(self)
        self.routing = routing
        if routing is not None:
            routing.on_chosen = self._chosen
        self.leases = Leases(lambda: self.redis, self._me, clock)
        """One token refresh per account, one warmup per credential, across replicas."""

    # --- what this replica learns (on the event loop, never waits) ----------------------------

    def _learnt(self, outcome: Outcome, _snapshot: PoolSnapshot) -> None:
        # Abandoned only releases an in-flight count; BusyElsewhere is what others said.
        if not isinstance(outcome, Abandoned | BusyElsewhere):
            self._publish(encode_outcome(outcome))

    def _bound(self, key: str, credential_id: str, expires: float) -> None:
        self._publish(
            orjson.dumps({"conversation": key, "credential": credential_id, "expires": expires})
        )

    def _spent(self, key: str, requests: int, tokens: int, cost: float, at: float) -> None:
        spent = {"spent": key, "requests": requests, "tokens": tokens, "cost": cost, "at": at}
        self._publish(orjson.dumps(spent))

    def _chosen(self, profile: str, strategy: str | None) -> None:
        self._publish(orjson.dumps({"routing": profile, "strategy": strategy}))

    def _publish(self, event: bytes) -> None:
        if len(self._out) == self._out.maxlen:
            self.dropped += 1  # the oldest goes: the others learn it from a later outcome
        self._learnt_count += 1
        self._out.append(event)
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """For `/ready`: connected, leader, what waits to be published."""
        return {
            "state": "ok" if self.connected else "down" if self.tried else "connecting",
            "replica": self.replica,
            "leader": self.leader,
            "pending": len(self._out) + (self._unsent is not None),
            "dropped": self.dropped,
            "resyncs": self.resyncs,
            "replicas": list(self.replicas),
        }

    # --- what the others learnt ---------------------------------------------------------------

    def _fold_entry(self, fields: dict[bytes, bytes]) -> None:
        """One stream entry: another replica's events, each folded once."""
        replica, first = fields.get(b"replica", b""), fields.get(b"first")
        if replica == self._me:
            after, upto = self._refold
            if after < upto and int(first or 0) <= upto:  # (else nothing in it to fold back)
                self._fold_own(orjson.loads(fields.get(b"events", b"[]")), int(first or 0))
            return
        events = orjson.loads(fields.get(b"events", b"[]"))
        if first is None:  # a replica that does not number its events
            for event in events:
                self.fold(event)
            return
        folded, adopted = self._folded_to.get(replica, 0), self._adopted_to.get(replica, 0)
        number = int(first) - 1
        for event in events:
            number += 1
            if number > folded and (number > adopted or "outcome" not in event):
                self.fold(event)
        self._folded_to[replica] = max(folded, number)

    def _fold_own(self, events: list[dict[str, Any]], first: int) -> None:
        """This replica's own entry: applied here as it was learnt, so skipped, unless an
        adopted checkpoint replaced its state (see `_refold`)."""
        after, upto = self._refold
        for number, event in enumerate(events, first):
            if after < number <= upto and "outcome" in event:
                self.fold(event)

    def fold(self, event: dict[str, Any]) -> None:
        """One event from another replica, into this replica's copy."""
        try:
            if "outcome" in event:
                self.pool.apply_elsewhere(decode_outcome(event))
            else:
                self._fold_change(event)
        except (ValueError, KeyError, TypeError) as exc:  # a newer replica's event, say
            log.debug("event from another replica not understood: %s", exc)
            return
        self.folded += 1

    def _fold_change(self, change: dict[str, Any]) -> None:
        if "spent" in change and self.keys is not None:
            key, requests = str(change["spent"]), int(change.get("requests", 1))
            tokens, cost, at = int(change["tokens"]), float(change["cost"]), float(change["at"])
            self.keys.spend(key, requests, tokens, cost, at)
        elif "routing" in change and self.routing is not None:
            strategy = change["strategy"]
            self.routing.adopt(str(change["routing"]), str(strategy) if strategy else None)
        elif "conversation" in change and self.affinity is not None:
            self.affinity.learn(
                str(change["conversation"]), str(change["credential"]), float(change["expires"])
            )

    # --- tasks --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected: resync, then publish, fold and hold the lease until Redis fails."""
        delay = 0.2
        while True:
            try:
                await self._connected()
            except (RedisError, OSError) as failure:
                self.tried = True
                delay = 0.2 if self.connected else min(delay * 2, 5.0)
                self.connected = self.leader = False
                self._outage.failed(failure)
                self._busy_elsewhere({})  # what the others have in flight is not known now
            await asyncio.sleep(delay)

    def _client(self) -> aioredis.Redis:
        return aioredis.from_url(self.url, socket_connect_timeout=2, socket_timeout=10)

    async def _connected(self) -> None:
        """One session: a new client each time (a command cut off by a failure can leave a
        pooled connection with a reply no one reads)."""
        stale, self.redis = self.redis, self._client()
        with contextlib.suppress(RedisError, OSError):
            await stale.aclose()
        await self.redis.ping()
        await self._resync()
        self.connected = True
        self._outage.ok()
        await until_one_fails(
            {
                "replication-writer": self._writer(),
                "replication-reader": self._reader(),
                "replication-lease": self._leading(),
                "replication-busy": self._sharing_busy(),
            }
        )

    async def _resync(self) -> None:
        """At the first connection, and after missing entries: the latest checkpoint, then
        everything after it. Else the reader goes on from where it stopped."""
        if self.position is not None:
            if self.position == b"0-0" or await self.redis.xrange(
                STREAM, self.position, self.position
            ):
                return
            self.resyncs += 1  # the entry last folded is gone: so may be some after it
            log.warning(
                "this replica was away from Redis longer than the stream keeps entries (%g s) "
                "or Redis lost them: adopting the shared pool state again",
                self.keep_seconds,
            )
        checkpoint: dict[bytes, bytes] = cast(Any, await self.redis.hgetall(STATES))
        position = checkpoint.pop(POSITION, b"0-0")
        covered = orjson.loads(checkpoint.pop(COVERED, b"{}"))
        self._adopted_to = {replica.encode(): int(n) for replica, n in covered.items()}
        for credential_id, state in checkpoint.items():
            try:
                self.pool.adopt(credential_id.decode(), decode_state(state))
            except ValueError:
                continue
        # What this replica learnt that the checkpoint does not hold: folded back when read.
        self._refold = (self._adopted_to.get(self._me, 0), self._learnt_count)
        self.position = position

    async def _writer(self) -> None:
        while True:
            if self._unsent is None:
                await self._wake.wait()
                await asyncio.sleep(GATHER_SECONDS)  # one round trip for what comes meanwhile
                self._wake.clear()
            await self._send()

    async def _send(self) -> None:
        """Publish what waits, in entries of up to 1,000 events; an entry that fails stays
        `_unsent` (published as it was when Redis is back)."""
        while self._unsent is not None or self._out:
            if self._unsent is None:
                first = self._learnt_count - len(self._out) + 1
                batch = [self._out.popleft() for _ in range(min(len(self._out), 1000))]
                entry = {
                    "replica": self._me,
                    "first": str(first).encode(),
                    "events": b"[" + b",".join(batch) + b"]",
                }
                self._unsent = entry, len(batch)
            entry, count = self._unsent
            oldest = int((self.clock.now() - self.keep_seconds) * 1000)
            await self.redis.xadd(STREAM, cast(Any, entry), minid=oldest, approximate=False)
            self._unsent = None
            self.published += count

    async def _reader(self) -> None:
        while True:
            assert self.position is not None
            found: Entries = cast(
                Any, await self.redis.xread({STREAM: self.position}, count=1000, block=1000)
            )
            for _stream, entries in found or ():
                for entry, fields in entries:
                    self.position = entry
                    self._fold_entry(fields)
            await asyncio.sleep(GATHER_SECONDS)  # at most one read per interval, however busy

    async def _sharing_busy(self) -> None:
        """Say what this replica has in flight, and learn what the others have: a key per
        replica that expires (a replica that dies stops counting within `BUSY_TTL_MS`)."""
        mine_key = BUSY + self.replica
        while True:
            snapshot = self.pool.snapshot()
            mine: dict[Any, Any] = {
                c: s.in_flight for c, s in snapshot.states.items() if s.in_flight
            }
            now_ms = int(self.clock.now() * 1000)
            said = self.redis.pipeline(transaction=True)
            said.delete(mine_key)
            if mine:
                said.hset(mine_key, mapping=mine)
                said.pexpire(mine_key, BUSY_TTL_MS)
            said.zadd(REPLICAS, {self._me: now_ms})
            said.zremrangebyscore(REPLICAS, 0, now_ms - 60_000)
            said.zrange(REPLICAS, 0, -1)
            replicas: list[bytes] = (await said.execute())[-1]
            for numbers in (self._folded_to, self._adopted_to):
                for gone in numbers.keys() - set(replicas):
                    del numbers[gone]  # silent for a minute: its entries are long folded
            self.replicas = tuple(sorted(r.decode() for r in replicas))
            others = [r.decode() for r in replicas if r != self._me]
            heard = self.redis.pipeline(transaction=False)
            for other in others:
                heard.hgetall(BUSY + other)
            counts: dict[str, int] = {}
            for found in await heard.execute() if others else ():
                for credential_id, count in found.items():
                    key = credential_id.decode()
                    counts[key] = counts.get(key, 0) + int(count)
            self._busy_elsewhere(counts)
            await asyncio.sleep(BUSY_INTERVAL_SECONDS)

    def _busy_elsewhere(self, counts: dict[str, int]) -> None:
        snapshot, now = self.pool.snapshot(), self.clock.now()
        for credential in snapshot.credentials:
            count = counts.get(credential.id, 0)
            if snapshot.state(credential.id).busy_elsewhere != count:
                self.pool.apply(BusyElsewhere(credential.id, now, count))

    async def _leading(self) -> None:
        """Hold or take the leader lease; the leader checkpoints the pool each second."""
        ttl_ms = int(self.lease * 1000)
        while True:
            if self.leader:
                self.leader = bool(await self.redis.eval(_RENEW, 1, LEADER, self._me, ttl_ms))
            else:
                self.leader = bool(await self.redis.set(LEADER, self._me, nx=True, px=ttl_ms))
            if self.leader:
                await self._checkpoint()
            await asyncio.sleep(min(1.0, self.lease / 3))

    async def _checkpoint(self) -> None:
        snapshot = self.pool.snapshot()
        states: dict[Any, bytes] = {
            credential_id: encode_state(state) for credential_id, state in snapshot.states.items()
        }
        states[POSITION] = self.position or b"0-0"
        states[COVERED] = orjson.dumps(self._covered())
        await self.redis.hset(STATES, mapping=states)

    def _covered(self) -> dict[str, int]:
        """Per replica: the last event whose outcome this replica's pool state holds
        (all of its own, those folded, those the checkpoint it adopted held)."""
        covered = dict(self._adopted_to)
        for replica, number in self._folded_to.items():
            covered[replica] = max(number, covered.get(replica, 0))
        covered[self._me] = self._learnt_count
        return {replica.decode(): number for replica, number in covered.items()}

    async def close(self) -> None:
        """Publish what waits (the last outcomes of a stopping replica), hand the lease over at
        once (another replica need not wait for it to expire)."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            if self.connected:
                await asyncio.wait_for(self._send(), CLOSE_SECONDS)
            if self.leader:
                await self.redis.eval(RELEASE, 1, LEADER, self._me)
            await self.redis.aclose()
