"""Two replicas of one pool sharing it through the real Redis (127.0.0.1:6379, database 9):
what one learns, the other routes by."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from quotapool.clock import SystemClock
from quotapool.control.keys import KeyRing
from quotapool.domain.client import ClientKey
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.outcome import Limited, Served, Started, StatusSet
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.state import Status
from quotapool.proxy.errors import Dialect
from quotapool.store.client_keys import ClientKeyStore
from quotapool.store.memory import MemoryPoolStore
from quotapool.store.redis.replication import Replication
from quotapool.store.sql.db import make_engine, migrate
from quotapool.testing.fake_upstream import rate_limited
from tests.accounts.test_live_accounts import import_accounts
from tests.admin.test_admin_api import admin
from tests.conftest import Harness, HarnessFactory
from tests.faults.gate import Gate
from tests.faults.test_log_outage import Load
from tests.proxy.test_client_keys_e2e import create
from tests.proxy.test_warmup_e2e import routing, warmups
from tests.store.conftest import REDIS

BODY = {"model": "gpt-5.5", "input": "hi"}


@pytest.fixture
def fresh_redis() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    yield REDIS
    client.flushdb()
    client.close()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until `condition` held."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out")
        time.sleep(0.002)
    return time.monotonic() - start


def replicas(
    harness: HarnessFactory, url: str, count: int = 2, **settings: object
) -> list[Harness]:
    made = [harness(redis_url=url, **settings) for _ in range(count)]
    for h in made:
        wait_for(lambda h=h: h.qp.app is not None and _connected(h))
    return made


def _connected(h: Harness) -> bool:
    with h.http() as http:
        return bool(http.get("/ready").json()["replication"]["state"] == "ok")


def test_a_limit_learnt_by_one_replica_is_respected_by_the_other(
    harness: HarnessFactory, fresh_redis: str
) -> None:
    a, b = replicas(harness, fresh_redis, routing={"strategy": "sequential"})
    a.fake.account("tok-a").fail_next(rate_limited(600))
    with a.http() as http:
        assert (
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"}).status_code == 200
        )
    assert a.fake.served_by()[-2:] == ["alpha", "bravo"]
    seconds = wait_for(lambda: b.state("alpha").limited_at(time.time()))
    print(f"\nlimit learnt on A respected by B after {seconds * 1000:.1f} ms")
    assert seconds < 0.5  # typically tens of ms (bench/replicas.py measures it)
    with b.http() as http:
        assert (
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"}).status_code == 200
        )
    assert b.fake.served_by() == ["bravo"]  # B never sent it to alpha
    assert a.state("alpha").in_flight == b.state("alpha").in_flight == 0


def test_a_conversation_stays_on_its_account_whichever_replica_serves_it(
    harness: HarnessFactory, fresh_redis: str
) -> None:
    a, b = replicas(harness, fresh_redis)  # round robin
    turn = {"model": "gpt-5.5", "input": "hi", "prompt_cache_key": "conversation-1"}
    with a.http() as http:
        assert http.post("/v1/responses", json=turn).status_code == 200
        account = a.fake.served_by()[-1]
        for _ in range(2):  # the rotation moves on (for both: selections are shared too)
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": "other"})
    wait_for(
        lambda: (
            b.qp.dispatcher.conversations.affinity.bound(
                "prompt_cache_key:conversation-1", time.time()
            )
            is not None
        )
    )
    with b.http() as http:
        for _ in range(3):
            assert http.post("/v1/responses", json=turn).status_code == 200
    assert b.fake.served_by() == [account] * 3


def test_a_redis_restart_under_load_fails_no_request_and_state_converges(
    harness: HarnessFactory, fresh_redis: str
) -> None:
    with Gate(("127.0.0.1", 6379)).running() as gate:
        url = f"redis://127.0.0.1:{gate.port}/9"
        a, b = replicas(
            harness, url, routing={"strategy": "sequential"}, accounts_watch_interval=0.1
        )
        control = admin(b)
        load = Load(a.base)
        with load.running():
            time.sleep(0.5)
            gate.close()
            wait_for(lambda: not _connected(a) and not _connected(b))
            with control:  # learnt while Redis is out: a pause on B
                assert control.post("/credentials/charlie/pause").status_code == 200
            time.sleep(1.0)
            assert a.state("charlie").status is Status.ACTIVE
            gate.open()
            wait_for(lambda: a.state("charlie").status is Status.PAUSED, timeout=15)
            time.sleep(0.5)
        assert load.failures == 0 and load.sent > 50
        assert _connected(a) and _connected(b)
        # What A served while Redis was out reached B: its copy converges on A's.
        wait_for(lambda: b.state("alpha").served == a.state("alpha").served, timeout=5)


def test_an_idle_account_is_warmed_once_per_ttl_whichever_replica_selects(
    harness: HarnessFactory, fresh_redis: str
) -> None:
    """Each replica's selections would warm the idle secondaries: the claim in Redis lets one
    warmup per account through (before: one per replica)."""
    a = harness(redis_url=fresh_redis, routing=routing())
    b = harness(redis_url=fresh_redis, upstream_of=a, routing=routing())
    for h in (a, b):
        wait_for(lambda h=h: _connected(h))
    for h in (a, b, a, b):
        with h.http() as http:
            assert http.post("/v1/responses", json=BODY).status_code == 200
    wait_for(lambda: len(warmups(a)) >= 2)
    time.sleep(0.5)  # time for a second warmup of each, were there one
    assert sorted(warmups(a)) == [("bravo", "gpt-5.4-mini"), ("charlie", "gpt-5.4-mini")]


def test_a_continuation_sent_at_once_to_another_replica_finds_its_conversation(
    database: str, harness: HarnessFactory, fresh_redis: str
) -> None:
    """`previous_response_id` on a Codex account is expanded into the conversation kept by the
    replica that answered; an agent that continues at once through the other replica reaches it
    before the owner is shared (tens of ms) and before the conversation is written (250 ms):
    the replica waits for both (before: a 400, "no longer kept")."""
    a = harness(redis_url=fresh_redis, database_url=database)
    b = harness(redis_url=fresh_redis, database_url=database, upstream_of=a)
    for h in (a, b):
        wait_for(lambda h=h: _connected(h))
    for n in range(3):
        first = a.openai().responses.create(model="gpt-5.5", input=f"start {n}")
        follow = b.openai().responses.create(
            model="gpt-5.5", input="more", previous_response_id=first.id
        )
        assert follow.output_text == first.output_text  # its account, the conversation:
        sent = a.fake.seen[-1].body
        texts = [part.get("text") for item in sent["input"] for part in item["content"]]
        assert texts == [f"start {n}", first.output_text, "more"]


def test_round_robin_stays_even_across_replicas(harness: HarnessFactory, fresh_redis: str) -> None:
    a, b = replicas(harness, fresh_redis)  # round robin
    for n in range(30):
        with (a if n % 2 else b).http() as http:
            body = {"model": "gpt-5.5", "input": f"conversation {n}"}
            assert http.post("/v1/responses", json=body).status_code == 200
        time.sleep(0.1)  # the other replica has folded the selection
    served = a.fake.served_by() + b.fake.served_by()
    counts = {name: served.count(name) for name in ("alpha", "bravo", "charlie")}
    assert max(counts.values()) - min(counts.values()) <= 2, counts


def test_one_token_refresh_for_twenty_requests_across_three_replicas(
    harness: HarnessFactory, fresh_redis: str, tmp_path: Path
) -> None:
    """With refresh-token rotation a second refresh would log the account out: the replica that
    takes the lease refreshes, the others wait and read the tokens it saved."""
    first = harness(
        credentials=[],
        redis_url=fresh_redis,
        before_start=lambda fake, _up: import_accounts(tmp_path, fake, {"tok-a": -60}),
        routing={"strategy": "sequential"},
    )
    others = [
        harness(
            credentials=[],
            redis_url=fresh_redis,
            upstream_of=first,
            routing={"strategy": "sequential"},
        )
        for _ in range(2)
    ]
    group = [first, *others]
    for h in group:
        wait_for(lambda h=h: _connected(h))
    alpha = first.fake.account("tok-a")
    alpha.refresh_delay = 0.3

    async def burst() -> list[str]:
        clients = [
            openai.AsyncOpenAI(base_url=f"{h.base}/v1", api_key="k", max_retries=0) for h in group
        ]
        try:
            answers = await asyncio.gather(
                *(
                    clients[i % 3].responses.create(model="gpt-5.5", input=f"x{i}")
                    for i in range(20)
                )
            )
        finally:
            for client in clients:
                await client.close()
        return [a.output_text for a in answers]

    texts = asyncio.run(burst())
    assert all(t.startswith("Hi from") for t in texts)
    assert alpha.refreshes == 1
    refreshed = [h.qp.accounts.refresher for h in group]
    assert sum(r.refreshes for r in refreshed if r is not None) == 1

    def ask(h: Harness) -> int:
        with h.http() as http:
            return http.post("/v1/responses", json={"model": "gpt-5.5", "input": "y"}).status_code

    with ThreadPoolExecutor(3) as pool:  # every replica serves with the new token
        served = list(pool.map(ask, group))
    assert served == [200, 200, 200]
    assert first.fake.served_by()[-3:] == ["alpha"] * 3


def test_a_replica_that_comes_to_an_expired_token_after_another_renewed_it_refreshes_nothing(
    harness: HarnessFactory, fresh_redis: str, tmp_path: Path
) -> None:
    """The lease is free again once the first replica has renewed: the second still holds the
    used refresh token, and sending it would log the account out (`refresh_token_reused`). It
    reads the tokens the first one saved instead."""
    first = harness(
        credentials=[],
        redis_url=fresh_redis,
        before_start=lambda fake, _up: import_accounts(tmp_path, fake, {"tok-a": -60}),
        routing={"strategy": "sequential"},
    )
    second = harness(
        credentials=[], redis_url=fresh_redis, upstream_of=first, routing={"strategy": "sequential"}
    )
    for h in (first, second):
        wait_for(lambda h=h: _connected(h))
    for h in (first, second):  # one after the other
        with h.http() as http:
            answer = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "y"})
            assert answer.status_code == 200, answer.text
    assert first.fake.account("tok-a").refreshes == 1
    assert first.fake.served_by() == ["alpha", "alpha"]
    assert second.qp.accounts.refresher is not None
    assert second.qp.accounts.refresher.refreshes == 0


def test_what_one_replica_has_in_flight_counts_on_the_others(
    harness: HarnessFactory, fresh_redis: str
) -> None:
    a, b = replicas(harness, fresh_redis, routing={"strategy": "sequential"})
    account = a.fake.account("tok-a")
    account.event_delay, account.deltas = 0.2, 10  # a stream of about 2 s
    body = {"model": "gpt-5.5", "input": "hi", "stream": True}
    with a.http() as http, http.stream("POST", "/v1/responses", json=body) as response:
        chunks = response.iter_bytes()
        next(chunks)
        wait_for(lambda: b.state("alpha").busy_elsewhere == 1, timeout=2)
        assert b.state("alpha").in_flight == 0 and a.state("alpha").in_flight == 1
        for _ in chunks:
            pass
    wait_for(lambda: b.state("alpha").busy_elsewhere == 0, timeout=2)


def test_a_client_keys_limit_counts_requests_on_every_replica(
    harness: HarnessFactory, fresh_redis: str
) -> None:
    a, b = replicas(harness, fresh_redis, accounts_watch_interval=0.1)
    key = create(a, "shared", "--limit", "requests=3/day")
    wait_for(lambda: b.qp.keys.required)  # b has read the key from the shared database
    body = {"model": "gpt-5.5", "input": "hi"}
    headers = {"authorization": f"Bearer {key}"}
    statuses = []
    for h in (a, b, a):
        with h.http() as http:
            statuses.append(http.post("/v1/responses", json=body, headers=headers).status_code)
    assert statuses == [200, 200, 200]
    wait_for(lambda: b.qp.keys.usage(b.qp.keys._by_name["shared"])[0]["used"] == 3)
    with b.http() as http:
        refused = http.post("/v1/responses", json=body, headers=headers)
    assert refused.status_code == 429 and "key_limit_reached" in refused.text


def test_a_burst_over_three_replicas_cannot_pass_a_request_limit_together(
    harness: HarnessFactory, fresh_redis: str
) -> None:
    group = replicas(harness, fresh_redis, count=3, accounts_watch_interval=0.1)
    key = create(group[0], "burst", "--limit", "requests=6/day")
    for h in group:
        wait_for(lambda h=h: h.qp.keys.required)
    group[0].fake.account("tok-a").event_delay = 0.05  # the answers overlap
    headers = {"authorization": f"Bearer {key}"}

    def ask(h: Harness) -> int:
        with h.http() as http:
            return http.post("/v1/responses", json=BODY, headers=headers).status_code

    with ThreadPoolExecutor(18) as pool:
        statuses = list(pool.map(ask, group * 6))
    assert sorted(statuses) == [200] * 6 + [429] * 12
    counter = redis.Redis.from_url(fresh_redis).keys("quotapool:requests:burst:day:*")
    assert len(counter) == 1


def test_a_strategy_chosen_on_one_replica_routes_every_replica(
    harness: HarnessFactory, fresh_redis: str
) -> None:
    a, b = replicas(harness, fresh_redis, accounts_watch_interval=0.1)  # round robin
    with admin(a) as control:
        assert control.put("/routing/default", json={"strategy": "sequential"}).status_code == 200
        wait_for(lambda: b.qp.dispatcher.routing.default.strategy.name == "sequential")
        assert control.put("/routing/default", json={"strategy": None}).status_code == 200
        wait_for(lambda: b.qp.dispatcher.routing.default.strategy.name == "round_robin")


async def test_a_replica_stops_even_when_a_redis_command_fails_as_it_is_cancelled(
    fresh_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure met on the way out is not an outage: the replica must not reconnect forever (a
    server that never finishes stopping). Python 3.11's TaskGroup did just that: it raised the
    child's error and dropped the CancelledError (`tasks.until_one_fails` replaces it)."""

    async def fails_when_cancelled(self: Replication) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RedisConnectionError("connection closed while stopping") from None

    monkeypatch.setattr(Replication, "_sharing_busy", fails_when_cancelled)
    replica = Replication(fresh_redis, MemoryPoolStore(PoolSnapshot(())), SystemClock())
    running = asyncio.create_task(replica.run())  # noqa: TID251  (awaited below)
    while not replica.connected:
        await asyncio.sleep(0.01)
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=3)
    assert running in done and running.cancelled(), "the replica went on after its cancellation"
    await replica.close()


# --- each event folded once (replicas in this process, on the real Redis) ---------------------


def replica_of(url: str, **settings: Any) -> Replication:
    pool = PoolSnapshot(tuple(Credential(n, n, Kind.OPENAI, "http://127.0.0.1:9") for n in NAMES))
    return Replication(url, MemoryPoolStore(pool), SystemClock(), **settings)


NAMES = ("alpha", "bravo")


@contextlib.asynccontextmanager
async def running(*replicas: Replication) -> AsyncIterator[None]:
    """The replicas connected and running; stopped (and closed) on the way out."""
    tasks = [asyncio.create_task(r.run()) for r in replicas]  # noqa: TID251  (cancelled below)
    try:
        await until(lambda: all(r.connected for r in replicas))
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=3)
        for r in replicas:
            await r.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def serve(replica: Replication, requests: int) -> None:
    """`requests` requests served by alpha on this replica."""
    for _ in range(requests):
        now = time.time()
        replica.pool.apply(Started("alpha", now))
        replica.pool.apply(Served("alpha", now))


def served(replica: Replication) -> int:
    return replica.pool.snapshot().state("alpha").served


async def test_an_entry_sent_again_after_its_reply_was_lost_is_folded_once(
    fresh_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The XADD reached Redis, its reply did not: the replica cannot know, sends the entry
    again, and the others skip the copy (before: `served` and round-robin's rotation counted
    twice on every other replica)."""
    xadd, lost = aioredis.Redis.xadd, list[object]()

    async def reply_lost(self: aioredis.Redis, *args: object, **kwargs: object) -> object:
        added = await xadd(self, *args, **kwargs)  # type: ignore[arg-type]
        if not lost:
            lost.append(added)
            raise RedisConnectionError("connection lost before the reply")
        return added

    monkeypatch.setattr(aioredis.Redis, "xadd", reply_lost)
    a, b = replica_of(fresh_redis), replica_of(fresh_redis)
    async with running(a, b):
        serve(a, 3)
        await until(lambda: a.published == 6 and served(b) == 3)
        await asyncio.sleep(0.2)  # time to fold a copy, were it folded
        assert served(b) == 3
        assert (
            b.pool.snapshot().state("alpha").rotations == a.pool.snapshot().state("alpha").rotations
        )
        assert lost and await b.redis.xlen("quotapool:events") == 2  # the entry is there twice


async def test_a_checkpoint_holding_outcomes_not_yet_published_is_not_folded_again(
    fresh_redis: str,
) -> None:
    """The leader checkpoints its state, which holds what it learnt a moment ago and publishes
    just after: a replica starting from that checkpoint must not fold it a second time."""
    a = replica_of(fresh_redis, lease=30.0)
    async with running(a):
        await until(lambda: a.leader)
        serve(a, 2)
        await a._checkpoint()  # the writer gathers for 20 ms: nothing published yet
        assert a.published == 0
        await until(lambda: a.published == 4)
    c = replica_of(fresh_redis)
    async with running(c):
        await asyncio.sleep(0.2)  # time to fold the stream
        assert c.position != b"0-0" and served(c) == 2


async def test_a_stopping_replica_publishes_what_it_learnt_last(fresh_redis: str) -> None:
    a, b = replica_of(fresh_redis), replica_of(fresh_redis)
    async with running(b):
        async with running(a):
            serve(a, 1)  # stopped before the writer's next round
        await until(lambda: served(b) == 1)


async def test_a_replica_away_longer_than_the_stream_keeps_adopts_the_shared_state_again(
    fresh_redis: str,
) -> None:
    """The stream keeps the last `keep_seconds` of entries: a replica cut off for longer finds
    the entry it last folded gone, adopts the leader's checkpoint again, and keeps what it
    learnt itself meanwhile (folded back as it publishes it)."""
    a = replica_of(fresh_redis, lease=3.0, keep_seconds=0.5)  # the leader: a checkpoint a second
    with Gate(("127.0.0.1", 6379)).running() as gate:
        b = replica_of(fresh_redis.replace(":6379", f":{gate.port}"), keep_seconds=0.5)
        async with running(a, b):
            serve(a, 1)
            await until(lambda: served(b) == 1)  # a's entry is the last b folded
            gate.close()
            await until(lambda: not b.connected)
            now = time.time()
            a.pool.apply(StatusSet("alpha", now, Status.PAUSED))  # learnt while b is away
            b.pool.apply(Limited("bravo", now, Status.RATE_LIMITED, now + 600, "429"))  # b's own
            await asyncio.sleep(1.5)  # a checkpoints the pause; the entries grow old
            serve(a, 1)  # its entry trims the stream of everything older than 0.5 s
            await until(lambda: a.published == 5)
            assert await a.redis.xlen("quotapool:events") == 1
            gate.open()
            await until(lambda: b.connected and b.resyncs == 1, timeout=10)
            await until(lambda: status(b, "alpha") is Status.PAUSED)
            await until(lambda: status(b, "bravo") is Status.RATE_LIMITED)
            assert served(b) == 2  # the checkpoint's, then the one after it: each once
            await until(lambda: status(a, "bravo") is Status.RATE_LIMITED)


def status(replica: Replication, name: str) -> Status:
    return replica.pool.snapshot().state(name).status


# --- a client key's request limit on shared counters (real Redis) -----------------------------


def limited_replica(url: str, tmp_path: Path, limit: str) -> tuple[KeyRing, Replication, ClientKey]:
    """A replica whose key ring holds one key, "k", with `limit`."""
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    migrate(engine)
    ClientKeyStore(engine).create("k", time.time(), limits=[limit])
    ring = KeyRing(ClientKeyStore(engine), SystemClock(), {}, require=False)
    ring.load()
    replica = Replication(url, MemoryPoolStore(PoolSnapshot(())), SystemClock(), keys=ring)
    return ring, replica, ring._by_name["k"]


async def test_requests_admitted_together_at_a_windows_start_all_get_their_place(
    fresh_redis: str, tmp_path: Path
) -> None:
    ring, replica, key = limited_replica(fresh_redis, tmp_path, "requests=3/day")
    async with running(replica):
        assert [ring.admit(key, "m", Dialect.OPENAI, f"r{n}") for n in range(3)] == [None] * 3
        confirmed = await asyncio.gather(
            *(ring.confirm(key, f"r{n}", Dialect.OPENAI) for n in range(3))
        )
        assert confirmed == [None, None, None]  # (the last was refused: its seed counted all 3)
        assert ring.admit(key, "m", Dialect.OPENAI, "r3") is not None


async def test_a_frozen_redis_costs_a_limited_key_one_short_wait_not_one_a_request(
    fresh_redis: str, tmp_path: Path
) -> None:
    ring, replica, key = limited_replica(fresh_redis, tmp_path, "requests=1000/day")

    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # it takes the command and says nothing, ever

    frozen = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = frozen.sockets[0].getsockname()[1]
    async with running(replica):
        real = replica.redis
        replica.redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
        try:
            started = time.monotonic()
            for n in range(20):
                assert ring.admit(key, "m", Dialect.OPENAI, f"f{n}") is None
                assert await ring.confirm(key, f"f{n}", Dialect.OPENAI) is None
            took = time.monotonic() - started
        finally:
            await replica.redis.aclose()
            replica.redis = real
    for writer in held:
        writer.close()
    frozen.close()
    await frozen.wait_closed()
    print(f"\n20 requests of a limited key with Redis frozen: {took * 1000:.0f} ms")
    assert took < 0.5  # one timeout, then the local count (it was 20 × 250 ms)
