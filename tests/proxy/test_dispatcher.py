"""The dispatcher against an in-process mock upstream and a fake clock: failover, outages and
recovery, decided and measured without a socket or a sleep."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import orjson

from quotapool.domain.credential import Credential, Kind
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.request import Route
from quotapool.proxy.asgi import Message
from quotapool.proxy.attempt import Attempts, RelaySettings
from quotapool.proxy.conversations import Conversations
from quotapool.proxy.dispatcher import Dispatcher
from quotapool.proxy.errors import Dialect
from quotapool.proxy.exchange import Exchange
from quotapool.proxy.failover import Chooser, TokenGate
from quotapool.proxy.parse import parse_request
from quotapool.proxy.record import Record
from quotapool.routing.base import RoutingPolicy
from quotapool.routing.profiles import Profile, Routing
from quotapool.routing.registry import build_strategy
from quotapool.secrets import Secret
from quotapool.store.affinity import TURN_STATE, MemoryAffinityStore
from quotapool.store.memory import MemoryPoolStore
from quotapool.testing import events
from quotapool.testing.clock import FakeClock
from quotapool.testing.mock_upstream import MockClient, MockRequest, MockResponse
from quotapool.upstream.codex import CodexTransport
from quotapool.upstream.openai import OpenAITransport

NAMES = ("alpha", "bravo", "charlie")


def dispatcher(handler: Any) -> tuple[Dispatcher, MockClient, FakeClock]:
    clock = FakeClock()
    credentials = tuple(Credential(n, n, Kind.CODEX, "http://codex") for n in NAMES)
    pool = MemoryPoolStore(PoolSnapshot(credentials))
    client = MockClient(handler)
    attempts = Attempts(
        client=client,
        pool=pool,
        transports={Kind.CODEX: CodexTransport(), Kind.OPENAI: OpenAITransport()},
        secrets={n: Secret(f"token-of-{n}", f"acct-{n}") for n in NAMES},
        clock=clock,
        settings=RelaySettings(keepalive_seconds=15),
    )
    d = Dispatcher(
        attempts=attempts,
        conversations=Conversations(pool, MemoryAffinityStore(), clock, sticky=False),
        chooser=Chooser(pool, clock, random.Random(0), TokenGate(None, pool, clock), 3),
        routing=Routing(
            {"default": Profile("default", build_strategy("round_robin"), RoutingPolicy())}
        ),
        route_header=True,
    )
    return d, client, clock


def account(request: MockRequest) -> str:
    return request.headers["chatgpt-account-id"].removeprefix("acct-")


def answer(request: MockRequest) -> MockResponse:
    frames = events.responses_stream(request.json(), f"Hi from {account(request)}!", 2)
    return MockResponse(chunks=frames)


async def ask(d: Dispatcher, n: int = 0, stream: bool = False) -> tuple[int, bytes, Record]:
    """Send a new conversation (`n`) through the dispatcher; the status, body and record."""
    body = orjson.dumps({"model": "gpt-5.5", "input": f"question {n}", "stream": stream})
    request = parse_request(Route.RESPONSES, body, [], Dialect.OPENAI)
    record = Record(f"r{n}", d.clock.now(), "responses", "/v1/responses")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await d.serve(request, Exchange(Dialect.OPENAI, send, record, [], d.clock.now))
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body_out, record


def in_flight(d: Dispatcher) -> list[int]:
    return [d.pool.snapshot().state(n).in_flight for n in NAMES]


def test_a_usage_limit_fails_over_before_the_client_sees_a_byte() -> None:
    def upstream(request: MockRequest) -> MockResponse:
        if account(request) == "alpha":
            error = {"type": "usage_limit_reached", "message": "limit", "resets_in_seconds": 600}
            return MockResponse(429, json={"error": error})
        return answer(request)

    d, client, _ = dispatcher(upstream)
    status, body, record = asyncio.run(ask(d))
    assert status == 200 and b"Hi from bravo!" in body
    assert [account(r) for r in client.requests] == ["alpha", "bravo"]
    assert record.attempts == 2 and in_flight(d) == [0, 0, 0]
    assert d.pool.snapshot().state("alpha").status.value == "quota_exceeded"  # its 5 h window


def test_an_outage_is_a_503_costs_one_call_per_request_and_heals_at_the_next_probe() -> None:
    down = True

    def upstream(request: MockRequest) -> MockResponse:
        if down:
            raise aiohttp.ClientConnectionError("connection refused")
        return answer(request)

    d, client, clock = dispatcher(upstream)

    async def scenario() -> None:
        nonlocal down
        status, body, _ = await ask(d, 1)  # every credential tried once
        assert status == 503 and b"upstream_unavailable" in body and len(client.requests) == 3
        for n in range(2, 12):  # backing off: each request probes one credential at most
            before = len(client.requests)
            status, _, _ = await ask(d, n)
            assert status == 503 and len(client.requests) - before <= 1
        down = False
        clock.advance(5.0)  # the longest backoff
        record = (await ask(d, 100))[2]
        assert record.status == 200
        decision = record.decisions[0].explain()  # every credential is a candidate again
        assert decision["candidates"] == list(NAMES) and decision["excluded"] == []
        assert in_flight(d) == [0, 0, 0]

    asyncio.run(scenario())


def test_a_stream_broken_after_its_first_byte_ends_with_an_error_event() -> None:
    def upstream(request: MockRequest) -> MockResponse:
        frames = events.responses_stream(request.json(), "never finished", 5)
        return MockResponse(chunks=frames, fail_after=3)

    d, _, _ = dispatcher(upstream)

    status, body, record = asyncio.run(ask(d, stream=True))
    assert status == 200 and body.rstrip().endswith(b"}") and b"event: error" in body
    assert "stream broken" in (record.error or "") and in_flight(d) == [0, 0, 0]


def test_a_limit_announced_mid_stream_is_learnt() -> None:
    """The client sees the error event as it came; the account is not counted as served."""

    def upstream(request: MockRequest) -> MockResponse:
        frames = events.responses_stream(request.json(), "partial", 3)[:3]
        error = {"type": "usage_limit_reached", "message": "limit", "resets_in_seconds": 900}
        frames.append(events.sse({"type": "error", "status": 429, "error": error}, "error"))
        return MockResponse(chunks=frames)

    d, _, clock = dispatcher(upstream)
    status, body, record = asyncio.run(ask(d, stream=True))
    assert status == 200 and b"usage_limit_reached" in body
    state = d.pool.snapshot().state(record.credential or "")
    assert state.status.value == "quota_exceeded" and state.until == clock.now() + 900
    assert in_flight(d) == [0, 0, 0]


def test_with_replicas_a_follow_up_waits_for_the_owner_of_its_turn_state() -> None:
    """Another replica gave the turn state out a moment ago: its owner arrives on the stream
    while this replica waits (round robin alone would have sent the follow-up to alpha)."""

    async def follow_up() -> str:
        d, client, _ = dispatcher(answer)
        d.conversations.elsewhere_seconds = 1.0
        asyncio.get_running_loop().call_later(
            0.05, d.conversations.affinity.own, TURN_STATE + "ts-1", "charlie", 0.0
        )
        body = {"model": "gpt-5.5", "input": "follow", "stream": True, "store": False}
        headers = [(b"x-codex-turn-state", b"ts-1")]
        request = parse_request(Route.RESPONSES, orjson.dumps(body), headers, Dialect.CODEX)
        record = Record("r1", d.clock.now(), "responses", "/backend-api/codex/responses")

        async def send(_message: Message) -> None:
            pass

        await d.serve(request, Exchange(Dialect.CODEX, send, record, [], d.clock.now))
        return account(client.requests[-1])

    assert asyncio.run(follow_up()) == "charlie"
