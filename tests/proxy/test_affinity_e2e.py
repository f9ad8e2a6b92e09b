"""Conversations stay on their account through the real server."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from quotapool.testing.fake_upstream import usage_limit
from tests.conftest import Harness, HarnessFactory, codex_credentials

FIVE = [(f"tok-{n}", n, f"acct-{n}") for n in ("a1", "a2", "a3", "a4", "a5")]


def test_fifty_threads_ten_turns_each_stay_on_one_account(harness: HarnessFactory) -> None:
    def add(fake: object, _upstream: str) -> None:
        for token, name, account in FIVE:
            fake.add(token, name=name, account_id=account)  # type: ignore[attr-defined]

    h = harness(
        credentials=codex_credentials(FIVE),
        before_start=add,
        routing={"strategy": "capacity_weighted"},
    )
    served: dict[int, set[str]] = defaultdict(set)

    def thread(n: int) -> None:
        with httpx.Client(base_url=h.base, timeout=30) as http:
            for turn in range(10):
                response = http.post(
                    "/backend-api/codex/responses",
                    headers={"session-id": f"thread-{n}"},
                    json={
                        "model": "gpt-5.5",
                        "input": f"turn {turn}",
                        "stream": True,
                        "store": False,
                    },
                )
                assert response.status_code == 200
                served[n].add(response.headers["x-quotapool-route"].split("credential=")[1])

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(thread, range(50)))
    assert all(len(accounts) == 1 for accounts in served.values())
    assert len({next(iter(a)) for a in served.values()}) == 5  # threads spread over the pool


def turn(http: httpx.Client, n: int, headers: dict[str, str]) -> str:
    """One turn of a conversation; returns the account that served it."""
    response = http.post(
        "/v1/responses", headers=headers, json={"model": "gpt-5.5", "input": f"turn {n}"}
    )
    return response.headers["x-quotapool-route"].split("credential=")[1]


TOKENS = {"alpha": "tok-a", "bravo": "tok-b", "charlie": "tok-c"}


def test_budget_pressure_moves_a_thread_once(h: Harness) -> None:
    thread = {"thread-id": "T"}
    with h.http() as http:
        first = turn(http, 0, thread)
        h.fake.account(TOKENS[first]).primary_used = 97.0  # learned from this answer's headers
        assert turn(http, 1, thread) == first
        moved = [turn(http, n, thread) for n in range(2, 8)]
    assert moved[0] != first and len(set(moved)) == 1  # moved once, then stays


def test_previous_response_id_is_expanded_and_moves_when_its_account_runs_out(
    h: Harness,
) -> None:
    """The ChatGPT backend refuses `previous_response_id` over HTTP (the fake too): quotapool
    sends the conversation so far instead, to the same account while it can serve, else to
    another one."""
    client = h.openai()
    first = client.responses.create(model="gpt-5.5", input="start")
    owner = first.output_text.removeprefix("Hi from ").rstrip("!")
    follow = client.responses.create(model="gpt-5.5", input="more", previous_response_id=first.id)
    assert follow.output_text == f"Hi from {owner}!"  # its account: the cache is warm there
    sent = h.fake.seen[-1].body
    assert "previous_response_id" not in sent
    texts = [part.get("text") for item in sent["input"] for part in item.get("content", [])]
    assert texts == ["start", f"Hi from {owner}!", "more"]
    h.fake.account(TOKENS[owner]).fail_next(usage_limit(h.qp.dispatcher.clock.now() + 120))
    client.responses.create(model="gpt-5.5", input="someone else now")  # pool learns the limit
    moved = client.responses.create(
        model="gpt-5.5", input="continue", previous_response_id=follow.id
    )
    assert moved.output_text != f"Hi from {owner}!"  # another account, the whole conversation:
    texts = [
        p.get("text") for item in h.fake.seen[-1].body["input"] for p in item.get("content", [])
    ]
    assert texts == ["start", f"Hi from {owner}!", "more", f"Hi from {owner}!", "continue"]
    unstored = client.responses.create(model="gpt-5.5", input="once", store=False)
    with pytest.raises(openai.BadRequestError) as forgotten:  # store: false is not kept
        client.responses.create(model="gpt-5.5", input="x", previous_response_id=unstored.id)
    assert "send the whole conversation" in str(forgotten.value)


def test_a_brief_outage_does_not_move_the_thread(h: Harness) -> None:
    session = {"session-id": "S"}
    with h.http() as http:
        home = turn(http, 0, session)
        h.fake.account(TOKENS[home]).fail_next(usage_limit(h.qp.dispatcher.clock.now() + 1.0))
        assert turn(http, 1, session) != home  # a stand-in serves during the outage
        time.sleep(1.2)
        assert turn(http, 2, session) == home  # back to its warm cache
    decisions = json.loads(h.rows(3)[-1]["decision"])
    assert "affinity" in decisions[-1]["reason"]


def test_compact_routes_like_its_conversation_without_tool_fields(h: Harness) -> None:
    with h.http() as http:
        turn = http.post(
            "/v1/responses", headers={"session-id": "C"}, json={"model": "gpt-5.5", "input": "hi"}
        )
        home = turn.headers["x-quotapool-route"].split("credential=")[1]
        body = {
            "model": "gpt-5.5",
            "input": [],
            "tools": [{"type": "web_search"}],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "instructions": "keep",
        }
        compact = http.post(
            "/backend-api/codex/responses/compact", headers={"session-id": "C"}, json=body
        )
    assert compact.status_code == 200, compact.text
    assert compact.json()["output"][0]["encrypted_content"] == f"compacted by {home}"
    seen = h.fake.seen[-1]
    assert seen.path == "/backend-api/codex/responses/compact"
    assert seen.body == {"model": "gpt-5.5", "input": [], "instructions": "keep"}
    assert h.rows(2)[-1]["route"] == "compact"


def test_turn_state_is_owned_by_its_account(h: Harness) -> None:
    with h.http() as http:
        first = http.post(
            "/backend-api/codex/responses",
            json={"model": "gpt-5.5", "input": "a", "stream": True, "store": False},
        )
        turn_state = first.headers["x-codex-turn-state"]  # returned to the client
        owner = first.headers["x-quotapool-route"].split("credential=")[1]
        for n in range(4):
            follow = http.post(
                "/backend-api/codex/responses",
                headers={"x-codex-turn-state": turn_state},
                json={
                    "model": "gpt-5.5",
                    "input": f"follow-up {n}",
                    "stream": True,
                    "store": False,
                },
            )
            assert follow.headers["x-quotapool-route"].endswith(f"credential={owner}")
    assert h.fake.seen[-1].headers["x-codex-turn-state"] == turn_state  # forwarded upstream
