"""Alerts, from a running server to real webhook receivers on loopback: once per episode, with
their clearing; retried when a receiver fails; a webhook's URL never logged."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from aiohttp import web
from sqlalchemy import Engine

from quotapool.clock import SystemClock
from quotapool.config import AlertsConfig
from quotapool.control.keys import KeyRing
from quotapool.domain.alerts import Alert, Episodes, Thresholds, key_alerts, runs_out_alert
from quotapool.domain.outcome import StatusSet
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.state import Status
from quotapool.jobs.alerts import Alerts
from quotapool.net.client import Outbound
from quotapool.store.sql.schema import usage_history
from quotapool.tasks import TaskSet
from quotapool.testing.fake_upstream import usage_limit
from quotapool.testing.serve import run_in_thread
from tests.conftest import Harness, HarnessFactory
from tests.proxy.test_client_keys_e2e import create


class Receiver:
    """An HTTP endpoint that records what is posted; `failures` first answers are 500."""

    def __init__(self, failures: int = 0) -> None:
        self.posted: list[dict[str, Any]] = []
        self.failures = failures
        self.lock = threading.Lock()
        self.app = web.Application()
        self.app.router.add_post("/hook/{secret}", self._post)

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self.lock:
            if self.failures:
                self.failures -= 1
                return web.Response(status=500)
            self.posted.append(body)
        return web.Response(status=200)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.posted) >= count:
                    return list(self.posted)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.posted)} of {count} posts: {self.posted}")


def watching(url: str, **thresholds: float) -> dict[str, Any]:
    """`[alerts]` posting to `url`, looking every 0.1 s; the forecast's alert off unless asked."""
    return {"webhooks": [{"url": url}], "interval_seconds": 0.1, "runs_out_hours": 0, **thresholds}


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, str, Receiver, str]]:
    plain, slack = Receiver(), Receiver(failures=1)
    with run_in_thread(plain) as a, run_in_thread(slack) as b:
        yield plain, f"{a}/hook/s3cret-json", slack, f"{b}/hook/s3cret-slack"


def test_an_account_that_needs_a_login_is_said_once_and_its_clearing_too(
    harness: HarnessFactory,
    receivers: tuple[Receiver, str, Receiver, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain, plain_url, slack, slack_url = receivers
    h: Harness = harness(
        alerts={
            "webhooks": [{"url": plain_url}, {"url": slack_url, "format": "slack"}],
            "interval_seconds": 0.1,
            "runs_out_hours": 0,
        }
    )
    pool, now = h.qp.pool, h.qp.dispatcher.clock.now
    alpha = next(c for c in pool.snapshot().credentials if c.name == "alpha")
    pool.apply(StatusSet(alpha.id, now(), Status.REAUTH_REQUIRED, "invalid_grant"))
    raised = plain.wait_for(1)[0]
    assert (raised["event"], raised["alert"], raised["subject"]) == ("raised", "reauth", "alpha")
    assert "quotapool accounts login" in raised["message"]
    time.sleep(0.5)  # several more looks: still one post
    assert len(plain.posted) == 1
    pool.apply(StatusSet(alpha.id, now(), Status.ACTIVE, ""))
    cleared = plain.wait_for(2)[1]
    assert (cleared["event"], cleared["subject"]) == ("cleared", "alpha")
    # The Slack receiver failed the first post: it got both anyway, after a retry.
    texts = [p["text"] for p in slack.wait_for(2, timeout=15)]
    assert texts[0].startswith(":rotating_light: quotapool: alpha needs a new login")
    assert texts[1].startswith(":white_check_mark: quotapool: cleared: alpha")
    logged = caplog.text
    assert "alert: alpha needs a new login" in logged and "trying again" in logged
    assert "s3cret" not in logged


def test_a_client_key_near_its_limit_is_an_alert(
    harness: HarnessFactory, receivers: tuple[Receiver, str, Receiver, str]
) -> None:
    plain, plain_url, _slack, _ = receivers
    h = harness(alerts=watching(plain_url, key_limit_percent=50), accounts_watch_interval=0.1)
    key = create(h, "ci", "--limit", "requests=2/day")
    with h.http() as http:
        answer = http.post(
            "/v1/responses",
            json={"model": "gpt-5.5", "input": "hi"},
            headers={"authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 200
    posted = plain.wait_for(1)[0]
    assert (posted["alert"], posted["subject"]) == ("key_limit", "ci: requests=2/day")
    assert "50%" in posted["message"]


def test_episodes_and_thresholds() -> None:
    episodes = Episodes()
    a, b = Alert("out", "alpha", "alpha is out"), Alert("reauth", "bravo", "bravo needs")
    assert episodes.seen([a]) == ([a], [])
    assert episodes.seen([a, b]) == ([b], [])
    assert episodes.seen([b]) == ([], [a])
    limits = Thresholds(15.0, 24.0, 90.0)
    assert runs_out_alert(1_000.0 + 23 * 3600, 1_000.0, limits)[0].subject == "pool"
    assert runs_out_alert(1_000.0 + 25 * 3600, 1_000.0, limits) == []
    usage = [{"limit": "requests=10/day", "used": 9, "amount": 10.0}]
    assert key_alerts([("k", usage)], limits)[0].subject == "k: requests=10/day"
    assert key_alerts([("k", [{**usage[0], "used": 8}])], limits) == []


def test_an_account_out_longer_than_the_threshold_is_an_alert(
    harness: HarnessFactory, receivers: tuple[Receiver, str, Receiver, str]
) -> None:
    plain, plain_url, _slack, _ = receivers
    h = harness(alerts=watching(plain_url, out_minutes=0), routing={"strategy": "sequential"})
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 3600))
    with h.http() as http:
        assert (
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"}).status_code == 200
        )
    posted = plain.wait_for(1)[0]
    assert (posted["alert"], posted["subject"]) == ("out", "alpha")
    assert "usage_limit_reached" in posted["message"]


def test_a_pool_forecast_to_run_out_soon_is_an_alert(
    harness: HarnessFactory, receivers: tuple[Receiver, str, Receiver, str]
) -> None:
    plain, plain_url, _slack, _ = receivers
    h = harness(alerts=watching(plain_url, runs_out_hours=24))
    now, reset = time.time(), time.time() + 4 * 86400
    rows = [
        {"credential": name, "at": now - hours * 3600, "window": "secondary",
         "used_percent": 90.0 - 2.0 * hours, "resets_at": reset, "source": "headers"}
        for name in ("alpha", "bravo", "charlie")
        for hours in (24, 1)
    ]  # fmt: skip
    assert h.qp.request_log is not None
    with h.qp.request_log.engine.begin() as connection:
        connection.execute(usage_history.insert(), rows)
    posted = plain.wait_for(1)[0]
    assert (posted["alert"], posted["subject"]) == ("runs_out", "pool")
    assert "runs out of weekly credits in" in posted["message"]


def test_a_replica_that_cannot_reach_redis_says_so(
    harness: HarnessFactory, receivers: tuple[Receiver, str, Receiver, str]
) -> None:
    plain, plain_url, _slack, _ = receivers
    harness(
        redis_url="redis://127.0.0.1:1/9",  # nothing listens there
        alerts=watching(plain_url),
    )
    posted = plain.wait_for(1)[0]
    assert posted["alert"] == "redis" and posted["subject"].startswith("replica ")
    assert "cannot reach Redis" in posted["message"]


def test_a_replica_that_leaves_is_an_alert_until_one_replaces_it() -> None:
    status: dict[str, Any] = {"state": "ok", "replicas": ["a", "b"]}
    alerts = Alerts(
        AlertsConfig(), lambda: PoolSnapshot(()), SystemClock(), cast(Engine, None),
        cast(KeyRing, None), list, cast(Outbound, None), TaskSet(), redis=lambda: status,
    )  # fmt: skip
    assert alerts._departures() == []
    status["replicas"] = ["a"]
    (left,) = alerts._departures()
    assert (left.kind, left.subject) == ("replica", "replica b")
    assert "1 of 2 replicas serve" in left.message
    assert alerts._departures() == [left]  # still gone: still in force (said once: Episodes)
    status["replicas"] = ["a", "c"]  # a replacement joined
    assert alerts._departures() == []
