"""Every strategy through the real server; fairness under concurrency; reload while running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from quotapool.cli.main import app
from quotapool.proxy.record import EXPLAINED
from quotapool.routing.registry import STRATEGIES
from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread, usage_limit
from tests.conftest import Harness, HarnessFactory, codex_credentials
from tests.faults.process import free_port

SINGLE_CASES = {
    "fill_first": ["alpha"] * 6,
    "failover": ["alpha"] * 6,
    "round_robin": ["alpha", "bravo", "charlie"] * 2,
    "least_busy": ["alpha", "bravo", "charlie"] * 2,
}


def served(h: Harness, count: int) -> list[str]:
    client = h.openai()
    names = []
    for _ in range(count):
        # A new conversation each time (identical ones would stay on their account).
        response = client.responses.with_raw_response.create(
            model="gpt-5.5", input=f"hi {uuid.uuid4()}"
        )
        names.append(response.headers["x-quotapool-route"].split("credential=")[1])
    return names


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_serves_and_explains(harness: HarnessFactory, strategy: str) -> None:
    creds = codex_credentials()
    creds[0]["plan"], creds[1]["plan"], creds[2]["plan"] = "plus", "pro", "free"
    for cred, price in zip(creds, (3.0, 1.0, 2.0), strict=True):
        cred["prices"] = {"gpt-5.5": price}
    h = harness(credentials=creds, routing={"strategy": strategy, "pinned": "charlie", "seed": 1})
    names = served(h, 6)
    assert len(names) == 6
    if strategy in SINGLE_CASES:
        assert names == SINGLE_CASES[strategy]
    if strategy == "single":
        assert set(names) == {"charlie"}
    if strategy == "least_cost":
        assert set(names) == {"bravo"}
    rows = h.rows(6)
    decision = json.loads(rows[-1]["decision"])[0]
    assert decision["strategy"] == strategy and decision["selected"] == names[-1]
    if strategy not in (
        "fill_first",
        "single",
        "least_latency",
    ):  # least_latency is still exploring
        assert decision["ranked_by"] and decision["selected"] in decision["scores"]


def test_quota_headers_steer_usage_weighted_and_budget_safe(harness: HarnessFactory) -> None:
    h = harness(routing={"strategy": "usage_weighted"})
    for token, weekly in (("tok-a", 50.0), ("tok-b", 10.0), ("tok-c", 30.0)):
        h.fake.account(token).secondary_used = weekly
    first = served(h, 3)
    assert sorted(first) == ["alpha", "bravo", "charlie"]  # nothing known yet: rotation
    assert served(h, 5) == ["bravo"] * 5  # learned from x-codex-secondary-used-percent
    # bravo's 5-hour window fills up: budget-safe moves traffic before any 429.
    h.fake.account("tok-b").primary_used = 99.0
    assert served(h, 2) == ["bravo", "charlie"]
    last = h.rows(10)[-1]  # all ten: the log is written in batches
    assert "over budget (99%" in last["decision"]
    assert h.fake.account("tok-b").failures == type(h.fake.account("tok-b").failures)()


@pytest.mark.parametrize("strategy", ["round_robin", "fill_first"])
def test_concurrent_requests_stay_fair_and_consistent(
    harness: HarnessFactory, strategy: str
) -> None:
    h = harness(routing={"strategy": strategy})
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).latency = 0.05

    async def burst() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=f"{h.base}/v1", api_key="k", max_retries=0
        ) as client:
            responses = await asyncio.gather(
                *(
                    client.responses.with_raw_response.create(model="gpt-5.5", input=f"hi {i}")
                    for i in range(60)
                )
            )
        return [r.headers["x-quotapool-route"].split("credential=")[1] for r in responses]

    counts = Counter(asyncio.run(burst()))
    if strategy == "round_robin":
        assert counts == {"alpha": 20, "bravo": 20, "charlie": 20}
    else:
        assert counts == {"alpha": 60}
    snapshot = h.qp.pool.snapshot()
    assert all(snapshot.state(c.id).in_flight == 0 for c in snapshot.credentials)
    assert sum(snapshot.state(c.id).served for c in snapshot.credentials) == 60


def test_sighup_reloads_the_strategy(tmp_path: Path) -> None:
    fake = FakeUpstream()
    for token, name in (("tok-a", "alpha"), ("tok-b", "bravo")):
        fake.add(token, name=name, account_id=f"acct-{name}")
    port = free_port()
    config = tmp_path / "quotapool.toml"

    def write(strategy: str, profiles: str = "") -> None:
        creds = "".join(
            f'[[credentials]]\nkind = "codex"\nname = "{n}"\napi_key = "{t}"\naccount_id = "acct-{n}"\n'
            for t, n in (("tok-a", "alpha"), ("tok-b", "bravo"))
        )
        config.write_text(
            f'codex_base_url = "{upstream}/backend-api"\n[routing]\nstrategy = "{strategy}"\n'
            f"{profiles}{creds}"
        )

    with run_in_thread(fake) as upstream:
        write("fill_first")
        env = {**os.environ, "QUOTAPOOL_HOME": str(tmp_path)}
        process = subprocess.Popen(
            [sys.executable, "-m", "quotapool.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                for _ in range(100):
                    try:
                        http.get("/health")
                        break
                    except httpx.ConnectError:
                        time.sleep(0.1)

                def route(path: str = "/v1/responses") -> str:
                    response = http.post(path, json={"model": "gpt-5.5", "input": "x"})
                    return str(response.headers.get("x-quotapool-route", response.status_code))

                assert route() == "fill_first; credential=alpha"
                assert route("/p/batch/v1/responses") == "400"
                write("round_robin", '[profiles.batch]\nstrategy = "sequential"\n')
                process.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 5
                while not route().startswith("round_robin") and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert route().startswith("round_robin")
                assert route("/p/batch/v1/responses") == "sequential; credential=alpha"
                config.write_text("port = 'broken'")
                process.send_signal(signal.SIGHUP)
                time.sleep(0.3)
                assert route().startswith("round_robin")  # a bad file keeps the running strategy
        finally:
            process.terminate()
            _, err = process.communicate(timeout=10)
    log = err.decode()
    assert "routing reloaded: strategy round_robin; profiles batch" in log
    assert "routing not reloaded" in log and "Traceback" not in log
    write("round_robin")  # (the file is broken: the CLI reads it too)
    audited = CliRunner().invoke(app, ["audit", "--json"], env={"QUOTAPOOL_HOME": str(tmp_path)})
    assert audited.exit_code == 0, audited.output
    (reload,) = [json.loads(line) for line in audited.output.splitlines()]
    assert (reload["actor"], reload["action"]) == ("quotapool.toml (SIGHUP)", "routing.reload")
    assert reload["before"] == {"default": "fill_first"}
    assert reload["after"] == {"batch": "sequential", "default": "round_robin"}


def test_a_decision_over_a_large_pool_is_logged_short_with_what_matters(
    harness: HarnessFactory,
) -> None:
    """60 accounts, decided from the routing index: the logged decision names the winner,
    the account a failed attempt tried and `EXPLAINED` entries per list at most, and counts
    the rest."""
    accounts = [(f"tok-{i}", f"acct{i:02d}", f"acct-id-{i:02d}") for i in range(60)]

    def add_accounts(fake: FakeUpstream, _upstream: str) -> None:
        for token, name, account in accounts:
            fake.add(token, name=name, account_id=account)

    h = harness(
        credentials=codex_credentials(accounts),
        before_start=add_accounts,
        routing={"strategy": "fill_first"},
    )
    h.fake.account("tok-0").fail_next(usage_limit(h.qp.dispatcher.clock.now() + 600))
    assert served(h, 1) == ["acct01"]  # acct00 (first by account id) hit its limit
    first, second = json.loads(h.rows(1)[0]["decision"])
    assert first["selected"] == "acct00" and second["selected"] == "acct01"
    assert len(first["candidates"]) == EXPLAINED
    assert first["omitted"] == {"candidates": 60 - EXPLAINED, "excluded": 0}
    assert set(first["scores"]) == set(first["candidates"])
    assert "acct01" in second["candidates"] and len(second["candidates"]) == EXPLAINED
    tried = [e for e in second["excluded"] if e["credential"] == "acct00"]
    assert tried and tried[0]["reason"].startswith("already tried for this request")
    assert second["omitted"] == {"candidates": 59 - EXPLAINED, "excluded": 0}
