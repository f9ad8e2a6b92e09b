"""Usage reports: per key, account, model or profile, per day, week or month (UTC calendar),
as rows, CSV, from the CLI and the admin API."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quotapool.cli.main import app
from quotapool.store.sql.db import make_engine, migrate
from quotapool.store.sql.schema import requests
from quotapool.store.usage import as_csv, usage
from tests.admin.test_admin_api import admin
from tests.conftest import HarnessFactory
from tests.proxy.test_client_keys_e2e import cli, client, create

PRICES = {"gpt-5.5": 2.0}


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_weeks_start_on_monday_and_months_on_the_first(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    migrate(engine)
    rows = [
        ("2026-11-30T23:00", "ann", "team"),  # a Monday, the last day of November
        ("2026-12-01T01:00", "ann", "team"),  # Tuesday: December
        ("2026-12-07T10:00", "bob", None),  # the next Monday
    ]
    with engine.begin() as connection:
        connection.execute(
            requests.insert(),
            [
                {"request_id": f"r{n}", "at": _at(at), "route": "responses", "path": "/v1/responses",
                 "status": 200, "stream": False, "attempts": 1, "warmup": False, "client_key": key,
                 "profile": profile, "sent_model": "gpt-5.5", "input_tokens": 400_000,
                 "output_tokens": 100_000, "cached_tokens": 0}
                for n, (at, key, profile) in enumerate(rows)
            ],
        )  # fmt: skip
    since = _at("2026-11-01T00:00")
    months = usage(engine, "key", "month", since, PRICES)
    assert [(r["at"], r["key"], r["requests"]) for r in months] == [
        (_at("2026-11-01T00:00"), "ann", 1),
        (_at("2026-12-01T00:00"), "ann", 1),
        (_at("2026-12-01T00:00"), "bob", 1),
    ]
    assert months[0]["cost"] == pytest.approx(1.0)  # 500k tokens at $2 per million
    weeks = usage(engine, "profile", "week", since, PRICES)
    assert [(r["at"], r["profile"], r["requests"]) for r in weeks] == [
        (_at("2026-11-30T00:00"), "team", 2),
        (_at("2026-12-07T00:00"), None, 1),
    ]
    only_ann = usage(engine, "model", "month", since, PRICES, key="ann")
    assert sum(r["requests"] for r in only_ann) == 2
    table = list(csv.DictReader(io.StringIO(as_csv(months, "key"))))
    assert table[0] == {
        "period": "2026-11-01T00:00+00:00", "key": "ann", "requests": "1",
        "input_tokens": "400000", "output_tokens": "100000", "cached_tokens": "0",
        "cost": "1.0000",
    }  # fmt: skip


def test_a_keys_report_from_the_cli_and_the_admin_api(harness: HarnessFactory) -> None:
    h = harness(accounts_watch_interval=0.1)
    ann, bob = create(h, "ann"), create(h, "bob")
    for key, count in ((ann, 2), (bob, 1)):
        for _ in range(count):
            client(h, key).responses.create(model="gpt-5.5", input="hi")
    h.rows(3)
    report = list(csv.DictReader(io.StringIO(cli(h, "usage", "--period", "month", "--csv"))))
    assert {(r["key"], r["requests"]) for r in report} == {("ann", "2"), ("bob", "1")}
    lines = cli(h, "usage", "--key", "ann", "--by", "model", "--period", "month", "--json")
    assert [json.loads(line)["requests"] for line in lines.splitlines()] == [2]
    table = CliRunner().invoke(
        app, ["usage"], env={"QUOTAPOOL_HOME": str(h.qp.settings.resolved_home), "COLUMNS": "80"}
    )
    assert table.exit_code == 0 and "ann" in table.output
    with admin(h) as api:
        weekly = api.get("/usage", params={"by": "key", "period": "week"}).json()
        as_text = api.get("/usage", params={"by": "key", "period": "month", "format": "csv"})
    assert {(r["key"], r["requests"]) for r in weekly} == {("ann", 2), ("bob", 1)}
    assert as_text.headers["content-type"].startswith("text/csv")
    assert as_text.text.splitlines()[0].startswith("period,key,requests")
