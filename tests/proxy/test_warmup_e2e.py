"""Warmup of secondaries through the real server (fill-style strategies)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import httpx
import openai
import pytest
from typer.testing import CliRunner

from quotapool.cli.main import app
from quotapool.domain.state import Status
from quotapool.testing.fake_upstream import FakeUpstream, server_error, usage_limit
from tests.conftest import Harness, HarnessFactory

WARMUP = {"credentials": ["bravo", "charlie"], "ttl_seconds": 60, "timeout_seconds": 2}


def routing(**warmup: Any) -> dict[str, Any]:
    return {"strategy": "fill_first", "warmup": {**WARMUP, "model": "gpt-5.4-mini", **warmup}}


def ask(h: Harness, path: str = "/v1/responses", **body: Any) -> httpx.Response:
    with h.http() as http:
        response = http.post(path, json={"model": "gpt-5.5", "input": f"{uuid.uuid4()}", **body})
    assert response.status_code == 200, response.text
    return response


def warmups(h: Harness) -> list[tuple[str | None, str | None]]:
    return [(s.account, s.model) for s in h.fake.seen if s.model == "gpt-5.4-mini"]


def settle(h: Harness, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(warmups(h)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    while any(h.state(n).in_flight for n in ("bravo", "charlie")) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_fill_selection_warms_the_idle_secondaries_once_per_ttl(
    harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_bravo(fake: FakeUpstream, _base: str) -> None:
        fake.account("tok-b").latency = 0.5

    h = harness(before_start=slow_bravo, routing=routing())
    assert ask(h).headers["x-quotapool-route"] == "fill_first; credential=alpha"
    # The client had its answer while bravo's warmup was still on its way: never delayed.
    assert h.state("bravo").in_flight == 1
    settle(h, 2)
    assert sorted(warmups(h)) == [("bravo", "gpt-5.4-mini"), ("charlie", "gpt-5.4-mini")]
    ask(h)
    ask(h)
    time.sleep(0.2)
    assert len(warmups(h)) == 2  # at most one per credential per TTL
    # The answers fed the pool like any other (quota read from headers), no rotation moved.
    assert h.state("bravo").primary is not None and h.state("bravo").rotations == {}
    rows = h.rows(5)
    warm = [r for r in rows if r["warmup"]]
    assert sorted(r["credential"] for r in warm) == ["bravo", "charlie"]
    assert all(r["status"] == 200 and r["output_tokens"] for r in warm)
    assert all(r["profile"] == "default" and r["model"] == "gpt-5.4-mini" for r in warm)
    assert not any(r["warmup"] for r in rows if r["credential"] == "alpha")
    monkeypatch.setenv("QUOTAPOOL_HOME", str(h.qp.settings.resolved_home))
    table = CliRunner().invoke(app, ["requests", "--wide"], env={"COLUMNS": "250"})
    assert table.output.count("warmup") >= 2 and "profile default · scenario warmup" in table.output


def test_a_failed_warmup_clears_its_ttl_and_a_limit_is_learned(harness: HarnessFactory) -> None:
    h = harness(routing=routing())
    h.fake.account("tok-b").fail_next(server_error(500))
    h.fake.account("tok-c").fail_next(usage_limit(time.time() + 900))
    ask(h)
    settle(h, 2)
    assert h.state("charlie").status is Status.QUOTA_EXCEEDED  # learned from the warmup
    time.sleep(0.6)  # bravo's error backoff (a failing upstream is not warmed meanwhile)
    ask(h)
    settle(h, 3)
    assert [w for w in warmups(h) if w[0] == "bravo"] == [("bravo", "gpt-5.4-mini")] * 2
    assert [w for w in warmups(h) if w[0] == "charlie"] == [("charlie", "gpt-5.4-mini")]
    statuses = sorted(r["status"] for r in h.rows(5) if r["warmup"])
    assert statuses == [200, 429, 500]


def test_a_warmup_has_its_own_timeout(harness: HarnessFactory) -> None:
    h = harness(routing=routing(credentials=["bravo"], timeout_seconds=0.3))
    h.fake.account("tok-b").latency = 1.0
    ask(h)
    deadline = time.monotonic() + 5
    while not any(r["warmup"] for r in h.rows(2, timeout=0.1)) and time.monotonic() < deadline:
        time.sleep(0.05)
    row = next(r for r in h.rows(2) if r["warmup"])
    assert row["status"] == 504 and "timed out after 0.3 s" in row["error"]
    assert h.state("bravo").in_flight == 0


def test_single_flight_even_past_the_ttl(harness: HarnessFactory) -> None:
    h = harness(routing=routing(credentials=["bravo"], ttl_seconds=0.01))
    h.fake.account("tok-b").latency = 0.6

    async def two() -> None:
        async with openai.AsyncOpenAI(base_url=f"{h.base}/v1", api_key="k", max_retries=0) as c:
            await c.responses.create(model="gpt-5.5", input="one")
            await asyncio.sleep(0.1)
            await c.responses.create(model="gpt-5.5", input="two")

    asyncio.run(two())
    assert warmups(h) == [("bravo", "gpt-5.4-mini")]


def test_no_warmup_for_pinned_requests_count_tokens_or_other_strategies(
    harness: HarnessFactory,
) -> None:
    profiles = {"plain": {}, "spread": {"strategy": "round_robin", "warmup": WARMUP}}
    h = harness(routing=routing(), profiles=profiles)
    first = ask(h, "/p/plain/v1/responses")
    turn = first.headers["x-codex-turn-state"]
    with h.http() as http:  # a turn of alpha's: pinned to it, nothing warmed
        pinned = http.post(
            "/v1/responses",
            json={"model": "gpt-5.5", "input": "go on"},
            headers={"x-codex-turn-state": turn},
        )
    assert pinned.headers["x-quotapool-route"].endswith("credential=alpha")
    ask(h, "/p/spread/v1/responses")  # round_robin spreads by itself
    time.sleep(0.3)
    assert warmups(h) == []
    creds = [
        {"kind": "anthropic", "name": n, "api_key": k} for n, k in (("a1", "sk-ant"), ("a2", "k2"))
    ]
    ant = harness(
        credentials=creds,
        before_start=lambda fake, _base: fake.add("k2", name="a2") and None,
        routing={"strategy": "fill_first", "warmup": {"credentials": ["a2"], "model": "c-3"}},
    )
    with ant.http() as http:
        body = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
        assert http.post("/v1/messages/count_tokens", json=body).status_code == 200
        time.sleep(0.3)
        assert [s.path for s in ant.fake.seen] == ["/v1/messages/count_tokens"]
        assert http.post("/v1/messages", json={**body, "max_tokens": 5}).status_code == 200
    deadline = time.monotonic() + 5
    while len(ant.fake.seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (ant.fake.seen[-1].account, ant.fake.seen[-1].model) == ("a2", "c-3")
    assert ant.fake.seen[-1].body["max_tokens"] == 1


def test_a_websocket_session_triggers_the_warmup_too(harness: HarnessFactory) -> None:
    h = harness(routing=routing())

    async def session() -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{h.base}/backend-api/codex/responses") as socket,
        ):
            assert socket._response.headers["x-quotapool-route"].endswith("credential=alpha")

    asyncio.run(session())
    settle(h, 2)
    assert sorted(warmups(h)) == [("bravo", "gpt-5.4-mini"), ("charlie", "gpt-5.4-mini")]
