"""The forecast: its arithmetic, its accuracy against the simulator, the CLI and the admin API."""

from __future__ import annotations

import json
import statistics
import time

import pytest
from typer.testing import CliRunner

from quotapool.cli.main import app
from quotapool.domain.credential import PLAN_CAPACITY
from quotapool.domain.forecast import (
    HOUR,
    WEEK,
    Account,
    Projection,
    Reading,
    accounts_of,
    pace,
    pool,
    project,
)
from quotapool.simulate.pool import team_pool
from quotapool.simulate.run import START, Result, Setting, simulate
from quotapool.simulate.workload import built_in
from quotapool.store.sql.schema import requests, usage_history
from tests.admin.test_admin_api import admin
from tests.conftest import Harness, HarnessFactory

NOW = 1_800_000_000.0
FIVE = 5 * HOUR


def test_a_pace_is_measured_over_the_last_day_of_the_current_run_to_now() -> None:
    reset = NOW + 3 * 24 * HOUR
    readings = [
        Reading(NOW - 40 * HOUR, 5.0, reset),
        Reading(NOW - 30 * HOUR, 20.0, reset),  # the last before the day: the base
        Reading(NOW - 10 * HOUR, 35.0, reset),
        Reading(NOW - 2 * HOUR, 44.0, reset),
    ]
    assert pace(readings, NOW, WEEK) == pytest.approx((44.0 - 20.0) / 30.0)
    # A reading of the window's previous run (another reset) is left out.
    earlier_run = [Reading(NOW - 30 * HOUR, 90.0, reset - WEEK), *readings[2:]]
    assert pace(earlier_run, NOW, WEEK) == pytest.approx((44.0 - 35.0) / 10.0)


def test_one_reading_gives_the_average_since_the_window_started() -> None:
    started = NOW - 10 * HOUR
    assert pace([Reading(NOW - HOUR, 30.0, started + WEEK)], NOW, WEEK) == pytest.approx(3.0)
    assert pace([Reading(NOW - HOUR, 30.0, None)], NOW, WEEK) is None
    assert pace([], NOW, WEEK) is None


def test_a_window_runs_out_before_its_reset_or_reaches_it_with_some_left() -> None:
    out = project(60.0, NOW + 10 * HOUR, 5.0, NOW)
    assert out.runs_out_at == pytest.approx(NOW + 8 * HOUR) and out.at_reset_percent == 100.0
    slow = project(60.0, NOW + 10 * HOUR, 2.0, NOW)
    assert slow.runs_out_at is None and slow.at_reset_percent == pytest.approx(80.0)
    reset = project(90.0, NOW - 1.0, 5.0, NOW)  # a reading from before its reset
    assert (reset.used_percent, reset.resets_at, reset.runs_out_at) == (0.0, None, NOW + 20 * HOUR)
    assert project(10.0, None, None, NOW).runs_out_at is None


def test_the_pool_spends_the_soonest_to_expire_first_and_runs_out_before_a_reset() -> None:
    def week(used: float, resets: float, rate: float) -> Projection:
        return project(used, resets, rate, NOW)

    accounts = [
        Account("a", 1000.0, week(50.0, NOW + 10 * HOUR, 2.0), None),  # 500 left, soonest
        Account("b", 1000.0, week(80.0, NOW + 100 * HOUR, 3.0), None),  # 200 left
    ]
    forecast = pool(accounts, NOW)
    assert forecast.demand == pytest.approx(50.0) and forecast.left == pytest.approx(700.0)
    # 10 h drain 500 (a is spent before its reset: nothing of it expires), a comes back whole
    # (1,000) at 10 h; 1,200 left at 50 an hour: dry 24 h later, before b's reset at 100 h.
    assert forecast.runs_out_at == pytest.approx(NOW + 34 * HOUR)
    assert forecast.back_at == pytest.approx(NOW + 100 * HOUR)  # b resets first after that
    assert forecast.expiring == pytest.approx(0.0)
    idle = [Account("a", 1000.0, week(50.0, NOW + 10 * HOUR, 0.0), None)]
    lazy = pool(idle, NOW)
    assert lazy.runs_out_at is None and lazy.expiring == pytest.approx(500.0)


def _simulated(workload: str, load: float) -> tuple[Result, dict[str, float]]:
    spec = team_pool(10)
    demand = spec.weekly_credits * load
    result = simulate(
        spec, built_in(workload, 1, 7.0, 10, demand), Setting("expiry_weighted"), seed=1, days=7.0
    )
    return result, {a.name: PLAN_CAPACITY[a.plan] for a in spec.accounts}


def _readings_until(result: Result, hour: float) -> dict[tuple[str, str], list[Reading]]:
    found: dict[tuple[str, str], list[Reading]] = {}
    for at, usage in result.timeline:
        if at > hour:
            break
        for name, (_five, week, reset) in usage.items():
            found.setdefault((name, "secondary"), []).append(
                Reading(START + at * HOUR, week, reset)
            )
    return found


def test_forecast_against_what_the_simulator_then_did() -> None:
    """A simulated week (the built-in team, routed by the default strategy): forecast at hour
    N each account's weekly use a day later, and compare; and, on a pool asked for more than it
    holds, when it runs out against when the simulator first refused a request."""
    result, capacities = _simulated("steady", 0.8)
    by_hour = {round(at): usage for at, usage in result.timeline}
    errors = []
    for hour in range(24, 6 * 24, 12):
        now = START + hour * HOUR
        for account in accounts_of(_readings_until(result, hour), capacities, now):
            week = account.week
            if week is None or week.pace is None or not week.resets_at:
                continue
            if week.resets_at <= now + 24 * HOUR:  # it resets in between: not comparable
                continue
            predicted = min(100.0, week.used_percent + week.pace * 24)
            errors.append(abs(predicted - by_hour[hour + 24][account.name][1]))
    error = statistics.mean(errors)
    print(f"weekly use a day ahead: mean error {error:.2f} points over {len(errors)} forecasts")
    assert len(errors) > 50 and error < 5.0

    dry, capacities = _simulated("office", 1.3)
    assert dry.first_blocked_at is not None
    now = START + 60 * HOUR
    forecast = pool(accounts_of(_readings_until(dry, 60), capacities, now), now)
    assert forecast.runs_out_at is not None
    predicted = (forecast.runs_out_at - START) / HOUR
    print(
        f"pool runs out: forecast at 60 h says {predicted:.1f} h, refused from {dry.first_blocked_at:.1f} h"
    )
    assert abs(predicted - dry.first_blocked_at) < 12.0


def seed_history(h: Harness, now: float) -> None:
    """alpha: a day of steady use; bravo: idle; charlie: nothing read yet."""
    reset = now + 3 * 24 * HOUR
    rows = [
        {"credential": "alpha", "at": now - hours * HOUR, "window": "secondary",
         "used_percent": 70.0 - 2.0 * hours, "resets_at": reset, "source": "headers"}
        for hours in (24, 12, 1)
    ] + [
        {"credential": "alpha", "at": now - 0.5 * HOUR, "window": "primary",
         "used_percent": 40.0, "resets_at": now + 2 * HOUR, "source": "headers"},
        {"credential": "bravo", "at": now - 30 * HOUR, "window": "secondary",
         "used_percent": 10.0, "resets_at": now + 24 * HOUR, "source": "poll"},
        {"credential": "bravo", "at": now - 2 * HOUR, "window": "secondary",
         "used_percent": 10.0, "resets_at": now + 24 * HOUR, "source": "poll"},
    ]  # fmt: skip
    assert h.qp.request_log is not None
    with h.qp.request_log.engine.begin() as connection:
        connection.execute(usage_history.insert(), rows)


def test_the_cli_and_the_admin_api_forecast_from_the_usage_history(
    harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness()
    seed_history(h, time.time())
    spent_rows = [  # the last day's spending, which the pool's pace is split by
        {"request_id": f"r{n}", "at": time.time() - 3600, "route": "responses",
         "path": "/v1/responses", "status": 200, "stream": False, "attempts": 1,
         "warmup": False, "profile": "default", "sent_model": "gpt-5.5",
         "input_tokens": 1000, "output_tokens": 200}
        for n in range(2)
    ]  # fmt: skip
    assert h.qp.request_log is not None
    with h.qp.request_log.engine.begin() as connection:
        connection.execute(requests.insert(), spent_rows)
    monkeypatch.setenv("QUOTAPOOL_HOME", str(h.qp.settings.resolved_home))
    runner = CliRunner()
    answer = runner.invoke(app, ["forecast", "--json"])
    assert answer.exit_code == 0, answer.output
    made = json.loads(answer.output)
    by_name = {a["name"]: a for a in made["accounts"]}
    assert set(by_name) == {"alpha", "bravo", "charlie"}  # the three ChatGPT accounts
    alpha = by_name["alpha"]["weekly"]
    assert alpha["pace"] == pytest.approx(46.0 / 24, rel=0.01)  # 22 → 68 % over the last day
    assert alpha["runs_out_at"] == pytest.approx(made["now"] + 32 / alpha["pace"] * HOUR)
    assert by_name["bravo"]["weekly"]["pace"] == 0.0
    assert by_name["bravo"]["weekly"]["at_reset_percent"] == 10.0
    assert by_name["charlie"]["weekly"] is None
    # The pool spends from bravo first (it resets soonest): what alpha's pace would spend in
    # the day before bravo's reset does not expire; the rest of bravo's 90 % does.
    demand = made["pool"]["demand_credits_per_hour"]
    assert demand == pytest.approx(PLAN_CAPACITY["plus"] * alpha["pace"] / 100)
    (spent,) = made["pool"]["spent_by"]
    assert (spent["profile"], spent["model"], spent["share"]) == ("default", "gpt-5.5", 1.0)
    assert spent["credits_per_hour"] == pytest.approx(demand)
    expiring = made["pool"]["expiring_credits"]
    assert expiring == pytest.approx(0.9 * PLAN_CAPACITY["plus"] - 24 * demand, rel=0.01)

    table = runner.invoke(app, ["forecast"], env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert all(len(line) <= 80 for line in table.output.splitlines())
    assert "alpha" in table.output and "runs out in" in table.output
    assert "spent by (profile · model, last day): default · gpt-5.5 100 %" in table.output

    with admin(h) as api:
        served = api.get("/forecast").json()
    assert {a["name"] for a in served["accounts"]} == {"alpha", "bravo", "charlie"}
    served_alpha = next(a for a in served["accounts"] if a["name"] == "alpha")["weekly"]
    assert served_alpha["pace"] == pytest.approx(alpha["pace"], rel=0.01)
