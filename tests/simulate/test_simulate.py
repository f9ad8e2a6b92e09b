"""`quotapool simulate`: the simulated pool keeps its plan's books, every request is served or
blocked exactly once, a seed gives the same results, and the command says which routing wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from quotapool.cli.main import app
from quotapool.domain.credential import PLAN_CAPACITY
from quotapool.domain.state import Status
from quotapool.simulate.pool import (
    FIVE_HOUR_SHARE,
    FIVE_HOURS,
    WEEK,
    AccountSpec,
    PoolSpec,
    Upstream,
    load_pool,
    team_pool,
)
from quotapool.simulate.run import START, Setting, simulate
from quotapool.simulate.workload import built_in
from quotapool.store.sql.db import make_engine, migrate
from quotapool.store.sql.schema import requests
from quotapool.upstream.signals import classify_error, parse_codex_headers

runner = CliRunner()
PLUS = PLAN_CAPACITY["plus"]


def idle_plus() -> Upstream:
    """One Plus account whose weekly window is not running when the run starts."""
    spec = PoolSpec((AccountSpec("solo", "plus", weekly_used=0, weekly_started_hours_ago=999),))
    return Upstream(spec, START, __import__("random").Random(0))


def test_windows_start_on_first_use_and_reset_as_the_plan_says() -> None:
    upstream = idle_plus()
    account = upstream.accounts["solo"]
    assert account.weekly.start is None and account.five_hour.start is None
    first = START + 3600  # an hour idle first: that hour's capacity expired unused
    assert upstream.attempt("solo", first).status == 200
    headers = upstream.finish("solo", first + 10, 756.0)  # a tenth of the week's credits
    reading = parse_codex_headers(headers, first + 10)
    assert reading is not None and reading.secondary is not None and reading.primary is not None
    assert reading.secondary.used_percent == pytest.approx(10.0, abs=0.1)
    assert reading.primary.used_percent == pytest.approx(
        100 * 756 / (PLUS * FIVE_HOUR_SHARE), abs=0.1
    )
    assert reading.primary.resets_at == int(first + FIVE_HOURS)
    assert reading.secondary.resets_at == int(first + WEEK)
    # The 5-hour window is spent: a 429 usage_limit_reached says when it resets.
    upstream.finish("solo", first + 20, PLUS * FIVE_HOUR_SHARE)
    refused = upstream.attempt("solo", first + 30)
    assert refused.status == 429
    verdict = classify_error(refused.status, refused.headers, refused.body, first + 30)
    assert verdict.status is Status.RATE_LIMITED or verdict.status is Status.QUOTA_EXCEEDED
    assert verdict.until == pytest.approx(first + FIVE_HOURS, abs=1)
    # At its reset the window closes: what was left of it expired; the next request opens one.
    later = first + FIVE_HOURS + 60
    assert upstream.attempt("solo", later).status == 200
    five = account.five_hour
    idle_hour = PLUS * FIVE_HOUR_SHARE / 5
    assert five.offered == pytest.approx(idle_hour + PLUS * FIVE_HOUR_SHARE + idle_hour / 60)
    assert five.expired == pytest.approx(idle_hour + idle_hour / 60)  # it was used up in full
    assert five.start == later and five.used == 0
    upstream.close(START + WEEK + 7200)  # the weekly window, opened an hour in, has reset
    weekly = account.weekly
    spent = 756.0 + PLUS * FIVE_HOUR_SHARE
    assert weekly.offered == pytest.approx(PLUS / 168 + PLUS + PLUS / 168)
    assert weekly.expired == pytest.approx(PLUS / 168 + (PLUS - spent) + PLUS / 168)


def test_every_request_is_served_or_blocked_exactly_once() -> None:
    pool = team_pool(3)
    workload = built_in("bursty", 7, 3, 3, pool.weekly_credits * 2.5)  # far more than it holds
    result = simulate(pool, workload, Setting.parse("fill_first"), seed=7, days=3)
    assert result.requests == len(workload.requests) > 1000
    assert result.served + result.blocked_requests == result.requests
    assert result.blocked_requests > 0 and result.blocked_seconds > 0
    assert sum(result.requests_per_account.values()) == result.served
    assert result.failovers > 0  # limits met by surprise went on to another account unseen


def test_a_seed_gives_the_same_results_and_another_seed_others() -> None:
    pool = team_pool(4)

    def run(seed: int) -> dict[str, object]:
        workload = built_in("steady", seed, 2, 4, pool.weekly_credits)
        return simulate(pool, workload, Setting.parse("expiry_weighted"), seed=seed, days=2).row()

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_routing_matters_and_expiry_weighted_wastes_least() -> None:
    pool = team_pool(8)
    workload = built_in("steady", 1, 7, 8, pool.weekly_credits * 0.9)
    results = {
        name: simulate(pool, workload, Setting.parse(name), seed=1, days=7)
        for name in ("expiry_weighted", "capacity_weighted", "sequential")
    }
    wasted = {name: r.expired_weekly_pct for name, r in results.items()}
    assert wasted["expiry_weighted"] < wasted["capacity_weighted"] < wasted["sequential"], wasted
    assert results["sequential"].affinity_breaks > results["expiry_weighted"].affinity_breaks


def test_warmup_starts_the_windows_of_idle_accounts() -> None:
    pool = team_pool(4)
    workload = built_in("office", 2, 3, 4, pool.weekly_credits * 0.5)
    plain = simulate(pool, workload, Setting.parse("sequential"), seed=2, days=3)
    warmed = simulate(pool, workload, Setting.parse("sequential+warmup"), seed=2, days=3)
    assert plain.warmups == 0 < warmed.warmups
    assert warmed.served + warmed.blocked_requests == warmed.requests  # warmups are not requests
    assert warmed.expired_five_hour_pct < plain.expired_five_hour_pct
    with pytest.raises(ValueError, match="warmup is for strategies that fill"):
        Setting.parse("round_robin+warmup")
    with pytest.raises(ValueError, match="unknown modifier 'fast'"):
        Setting.parse("round_robin+fast")


def test_a_pool_file_with_counts_keys_and_outages(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(
        "five_hour_share = 0.1\n"
        '[[accounts]]\nname = "work"\ncount = 2\nplan = "pro"\n'
        '[[keys]]\nname = "openai"\nrequests_per_minute = 5\n'
        '[[outages]]\naccount = "work-1"\nstart_hour = 0\nhours = 24\n'
    )
    spec = load_pool(path)
    assert [a.name for a in spec.accounts] == ["work-1", "work-2"] and spec.five_hour_share == 0.1
    workload = built_in("steady", 1, 1, 3, spec.weekly_credits)
    result = simulate(spec, workload, Setting.parse("round_robin"), seed=1, days=1)
    assert result.requests_per_account["work-1"] == 0  # down all day: its 502s failed over
    assert 0 < result.requests_per_account["openai"] <= 5 * 24 * 60
    assert result.failovers > 0
    (tmp_path / "bad.toml").write_text('[[accounts]]\nname = "a"\n[[keys]]\nname = "a"\n')
    with pytest.raises(ValueError, match="same name"):
        load_pool(tmp_path / "bad.toml")
    (tmp_path / "bad.toml").write_text('[[accounts]]\nplan = "platinum"\ncolour = "red"\n')
    refused = runner.invoke(app, ["simulate", "--pool", str(tmp_path / "bad.toml")])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    said = " ".join(refused.output.split())
    assert "accounts.0.name: Field required" in said and "unknown plan 'platinum'" in said
    assert "accounts.0.colour: Extra inputs are not permitted" in said


def test_fallback_rows_serve_what_the_accounts_cannot(tmp_path: Path) -> None:
    """Asked for three times what three accounts hold, requests no account can take go to a key
    that serves the fallback model (and only that model), up to its rate limit."""
    path = tmp_path / "pool.toml"
    path.write_text(
        'fallback = ["claude-sonnet-4-5"]\n'
        '[[accounts]]\nname = "work"\ncount = 3\n'
        '[[keys]]\nname = "claude"\nrequests_per_minute = 30\nmodels = ["claude-sonnet-4-5"]\n'
    )
    spec = load_pool(path)
    workload = built_in("steady", 3, 3, 3, spec.weekly_credits * 3.0)
    plain = simulate(spec, workload, Setting.parse("expiry_weighted"), seed=3, days=3)
    fell = simulate(spec, workload, Setting.parse("expiry_weighted+fallback"), seed=3, days=3)
    assert plain.fell_back == 0 and plain.requests_per_account["claude"] == 0  # not its model
    assert plain.blocked_requests > 0 and fell.fell_back == fell.requests_per_account["claude"] > 0
    assert fell.blocked_requests < plain.blocked_requests
    assert fell.served + fell.blocked_requests == fell.requests
    args = ["simulate", "--pool", str(path), "--days", "3", "--load", "3"]
    shown = runner.invoke(
        app, [*args, "--strategies", "expiry_weighted,expiry_weighted+fallback"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert "fell back" in shown.stdout and "expiry_weighted+fallback" in shown.stdout
    bare = runner.invoke(
        app, ["simulate", "--accounts", "2", "--strategies", "fill_first+fallback"]
    )
    assert bare.exit_code == 2 and "fallback = [" in bare.output


def test_the_command_compares_strategies_and_says_who_wins(tmp_path: Path) -> None:
    chart = tmp_path / "chart.html"
    args = ["simulate", "--days", "7", "--accounts", "6", "--strategies"]
    shown = runner.invoke(
        app, [*args, "expiry_weighted,sequential", "--chart", str(chart)], env={"COLUMNS": "160"}
    )
    assert shown.exit_code == 0, shown.output
    assert "expiry_weighted lets the least weekly quota expire" in shown.stdout
    page = chart.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "polyline" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # offline
    as_json = runner.invoke(app, [*args, "round_robin,fill_first+no_budget_safe", "--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert [r["strategy"] for r in rows] == ["round_robin", "fill_first+no_budget_safe"]
    for row in rows:
        for field in (
            "expired_quota_pct", "blocked_requests", "blocked_seconds", "affinity_breaks",
            "requests",
        ):  # fmt: skip
            assert field in row
    wrong = runner.invoke(app, [*args, "fastest"])
    assert wrong.exit_code == 2 and "unknown routing strategy 'fastest'" in wrong.output
    assert "Traceback" not in wrong.output


def test_the_request_log_replays(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'quotapool.db'}")
    migrate(engine)
    rows = [
        {
            "request_id": f"r{n}", "at": START + n * 30.0, "route": "responses",
            "path": "/v1/responses", "status": 200, "stream": False, "input_tokens": 900,
            "output_tokens": 100, "latency_ms": 4000.0, "attempts": 1, "warmup": False,
        }
        for n in range(500)
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(requests), rows)
    engine.dispose()
    result = runner.invoke(
        app,
        ["simulate", "--from-log", "--days", "1", "--json", "--strategies", "round_robin"],
        env={"QUOTAPOOL_HOME": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["workload"] == "log" and row["requests"] == 500 and row["served"] == 500
    empty = runner.invoke(
        app, ["simulate", "--from-log"], env={"QUOTAPOOL_HOME": str(tmp_path / "nothing")}
    )
    assert empty.exit_code == 2 and "no request log yet at" in empty.output
    assert not (tmp_path / "nothing" / "quotapool.db").exists()  # none made on the way
