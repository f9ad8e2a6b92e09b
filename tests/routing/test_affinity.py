"""Affinity keys, the bounded affinity store, sticky picks and hard ownership."""

from __future__ import annotations

import pytest

from quotapool.domain.state import Status
from quotapool.routing.affinity import BRIEF_OUTAGE_SECONDS, affinity_key, rebinds
from quotapool.routing.base import Decision, Rejection
from quotapool.store.affinity import MemoryAffinityStore
from tests.routing.playbook import Playbook
from tests.routing.playbook import credential as c


def test_keys_strongest_first() -> None:
    headers = {"thread-id": "t1", "session-id": "s1", "x-codex-turn-state": "ts"}
    assert affinity_key(headers, {"prompt_cache_key": "p"}, "client") == "x-codex-turn-state:ts"
    assert affinity_key({"session_id": "s"}, {"prompt_cache_key": "p"}, "c") == "session_id:s"
    assert affinity_key({}, {"prompt_cache_key": "p"}, "c") == "prompt_cache_key:p"
    one = affinity_key(
        {}, {"input": [{"role": "user", "content": "a"}], "instructions": "sys"}, "c"
    )
    assert one.startswith("derived:")
    assert one == affinity_key(
        {}, {"input": [{"role": "user", "content": "a"}, "later turn"], "instructions": "sys"}, "c"
    )
    assert one != affinity_key(
        {}, {"input": [{"role": "user", "content": "a"}], "instructions": "sys"}, "other client"
    )
    assert one != affinity_key(
        {}, {"input": [{"role": "user", "content": "b"}], "instructions": "sys"}, "c"
    )


@pytest.mark.parametrize(
    ("bound", "served_by", "back_at", "moves"),
    [
        (None, "b", None, True),  # a new conversation binds where it was served
        ("a", "a", None, True),  # served by its own account: the binding is refreshed
        ("a", "b", None, True),  # its account will not come back by itself (paused, reauth)
        ("a", "b", 100.0 + BRIEF_OUTAGE_SECONDS, False),  # back in time: b only stood in
        ("a", "b", 100.0 + BRIEF_OUTAGE_SECONDS + 1, True),  # out longer: b holds it now
        ("a", "b", 100.0, False),  # back this instant
    ],
)
def test_a_conversation_moves_to_a_stand_in_only_for_a_long_outage(
    bound: str | None, served_by: str, back_at: float | None, moves: bool
) -> None:
    assert rebinds(bound, served_by, back_at, now=100.0) is moves


def test_store_expires_refreshes_and_stays_bounded() -> None:
    store = MemoryAffinityStore(ttl=10, max_bindings=3, max_owned=2)
    store.bind("k", "a", now=0)
    assert store.bound("k", now=9) == "a"  # refreshed: now lives until 19
    assert store.bound("k", now=18) == "a"
    assert store.bound("k", now=40) is None
    for i in range(10):
        store.bind(f"k{i}", "a", now=0)
        store.own(f"resp_{i}", "a", 0.0)
    assert len(store) == 5
    assert store.owner("resp_9") == "a" and store.owner("resp_0") is None


def test_sticky_keeps_then_moves_over_budget() -> None:
    book = Playbook("round_robin", c("a"), c("b"), c("c"))
    book.usage("b", primary=40)

    def pick() -> Decision | Rejection:
        return book.decide(affinity="b")

    decided = pick()
    assert (
        isinstance(decided, Decision)
        and decided.credential.id == "b"
        and "affinity" in decided.reason
    )
    book.usage("b", primary=97)  # over budget while others are not: re-bind
    decided = pick()
    assert isinstance(decided, Decision) and decided.credential.id != "b"
    book.limited("b", until=5_000).usage("a", primary=99).usage("c", primary=99)
    decided = pick()
    assert isinstance(decided, Decision) and decided.credential.id in {"a", "c"}


def test_owner_is_the_only_choice() -> None:
    book = Playbook("round_robin", c("a"), c("b"))
    decided = book.decide(owner="b")
    assert isinstance(decided, Decision) and decided.credential.id == "b"
    book.limited("b", until=2_000, status=Status.RATE_LIMITED)
    rejected = book.decide(owner="b")
    assert isinstance(rejected, Rejection) and rejected.retry_at == 2_000
    assert "(previous_response_id) belongs to b" in rejected.message
