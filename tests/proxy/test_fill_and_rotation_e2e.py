"""fill_first, sequential and round-robin rejoin through the real server."""

from __future__ import annotations

import time

from quotapool.testing.fake_upstream import FakeUpstream, usage_limit
from tests.conftest import HarnessFactory, codex_credentials
from tests.proxy.test_routing_e2e import served


def test_fill_first_drains_the_most_used_account(harness: HarnessFactory) -> None:
    def uses(fake: FakeUpstream, _base: str) -> None:
        for token, five, weekly in (("tok-a", 10.0, 90.0), ("tok-b", 60.0, 30.0)):
            fake.account(token).primary_used = five
            fake.account(token).secondary_used = weekly
        fake.account("tok-c").primary_used, fake.account("tok-c").secondary_used = 60.0, 70.0

    # The usage poller reads each account's windows (wham/usage) before any request.
    h = harness(
        before_start=uses,
        usage_poll_interval=0.1,
        routing={"strategy": "fill_first", "budget_safe": False},
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        h.state(n).primary is None for n in ("alpha", "bravo", "charlie")
    ):
        time.sleep(0.02)
    assert served(h, 4) == ["charlie"] * 4  # 60 % like bravo, but more of its week used
    h.fake.account("tok-c").fail_next(usage_limit(time.time() + 600))
    assert served(h, 3) == ["bravo"] * 3  # moved only when charlie left the pool
    decision = h.rows(7)[-1]["decision"]
    assert "most used first: 5 h 60%, weekly 30%" in decision


def test_fill_first_ties_break_by_chatgpt_account_id(harness: HarnessFactory) -> None:
    creds = codex_credentials([("tok-a", "zulu", "acct-3"), ("tok-b", "yank", "acct-1")])
    h = harness(credentials=creds, routing={"strategy": "fill_first"})
    h.fake.add("tok-a", name="zulu", account_id="acct-3")
    h.fake.add("tok-b", name="yank", account_id="acct-1")
    assert served(h, 3) == ["yank"] * 3  # acct-1 sorts first, whatever the names


def test_sequential_follows_the_configured_order(harness: HarnessFactory) -> None:
    creds = codex_credentials([("tok-c", "charlie", "acct-c"), ("tok-a", "alpha", "acct-a")])
    h = harness(credentials=creds, routing={"strategy": "sequential"})
    assert served(h, 3) == ["charlie"] * 3
    h.fake.account("tok-c").fail_next(usage_limit(time.time() + 600))
    assert served(h, 2) == ["alpha"] * 2


def test_round_robin_returning_credential_does_not_get_a_burst(harness: HarnessFactory) -> None:
    h = harness(routing={"strategy": "round_robin"})
    assert sorted(served(h, 3)) == ["alpha", "bravo", "charlie"]
    h.fake.account("tok-c").fail_next(usage_limit(time.time() + 2))
    during = served(h, 10)
    assert "charlie" not in during[1:]
    time.sleep(2.2)
    after = served(h, 9)
    runs = [after[i] == after[i + 1] == after[i + 2] for i in range(len(after) - 2)]
    assert not any(runs), after
    assert after.count("charlie") == 3
