"""Alerts: look at the pool every `interval_seconds`, say each alert once when it is raised and
once when it clears — in the log and to every webhook (in order, each retried with backoff),
never in a request's way. With replicas, only the leader looks (one alert, not one per
replica); a replica that cannot reach Redis says so itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from quotapool.clock import Clock
from quotapool.config import AlertsConfig
from quotapool.config.sections import WebhookConfig
from quotapool.control.keys import KeyRing
from quotapool.domain.alerts import (
    Alert,
    Episodes,
    Thresholds,
    key_alerts,
    pool_alerts,
    runs_out_alert,
)
from quotapool.domain.forecast import WEEK, accounts_of, capacities, pool
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.state import Status
from quotapool.net.client import NETWORK_ERRORS, Outbound
from quotapool.routing.filters import available
from quotapool.store.usage import readings
from quotapool.store.writer_health import WriterHealth
from quotapool.tasks import TaskSet

log = logging.getLogger("quotapool.alerts")
RETRIES = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Waits before each new try of a webhook that failed (then the alert is given up on it)."""
POST_SECONDS = 10.0
FORECAST_LOOKS = 10
"""The forecast is read again every this many looks, at most every 5 minutes (it reads a
week of quota readings)."""
QUEUED = 1000
"""Alerts waiting for one webhook at most (past it, new ones are dropped and logged)."""


def _payload(webhook: WebhookConfig, event: str, alert: Alert, at: float) -> dict[str, Any]:
    if webhook.format == "slack":
        mark = ":rotating_light:" if event == "raised" else ":white_check_mark:"
        said = alert.message if event == "raised" else f"cleared: {alert.message}"
        return {"text": f"{mark} quotapool: {said}"}
    return {
        "event": event,
        "alert": alert.kind,
        "subject": alert.subject,
        "message": alert.message,
        "at": at,
    }


class Alerts:
    def __init__(
        self,
        config: AlertsConfig,
        snapshot: Callable[[], PoolSnapshot],
        clock: Clock,
        engine: Engine,
        keys: KeyRing,
        writers: Callable[[], Sequence[WriterHealth]],
        outbound: Outbound,
        tasks: TaskSet,
        active: Callable[[], bool] = lambda: True,
        redis: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.snapshot = snapshot
        self.clock = clock
        self.engine = engine
        self.keys = keys
        self.writers = writers
        self.outbound = outbound
        self.tasks = tasks
        self.active = active
        self.redis = redis
        """This replica's replication status (`Replication.status`), with replicas."""
        self.episodes = Episodes()
        """The pool's alerts in force (kept while another replica leads: no false clearing)."""
        self.own = Episodes()
        self._replicas: set[str] = set()
        """The replicas the leader heard from at its last look."""
        self._left: dict[str, int] = {}
        """A replica gone → how many there were before it left (it clears once as many are
        back: a replacement joined)."""
        self.queues: list[asyncio.Queue[dict[str, Any]]] = []
        self._forecast: tuple[float, float | None] | None = None
        """When the forecast was last read, and when it said the pool runs out."""
        self.out_since: dict[str, float] = {}
        self.limits = Thresholds(
            config.out_minutes, config.runs_out_hours, config.key_limit_percent
        )

    def _runs_out_at(self, snapshot: PoolSnapshot, now: float) -> float | None:
        weekly = capacities((c.name, c.kind, c.plan) for c in snapshot.credentials)
        if not weekly or not self.limits.runs_out_hours:
            return None
        return pool(accounts_of(readings(self.engine, now - WEEK), weekly, now), now).runs_out_at

    def _key_usages(self) -> list[tuple[str, list[dict[str, Any]]]]:
        return [(key.name, self.keys.usage(key)) for key in self.keys.store.all()]

    def current(
        self, runs_out_at: float | None, keys: list[tuple[str, list[dict[str, Any]]]]
    ) -> list[Alert]:
        """Every alert in force now (the forecast and the keys' usage read beforehand: they
        read the database)."""
        snapshot, now = self.snapshot(), self.clock.now()
        for credential in snapshot.credentials:
            state = snapshot.state(credential.id)
            out = not available(state, now) and state.status is not Status.PAUSED
            if out:
                self.out_since.setdefault(credential.id, now)
            else:
                self.out_since.pop(credential.id, None)
        found = pool_alerts(snapshot, now, self.out_since, self.limits)
        found += runs_out_alert(runs_out_at, now, self.limits)
        found += key_alerts(keys, self.limits)
        found += [
            Alert("writer", w.table, f"the {w.table} table cannot be written: {w.state}")
            for w in self.writers()
            if w.state != "ok"
        ]
        return found

    def _own(self) -> list[Alert]:
        """What only this replica knows: that it cannot reach Redis (no replica leads then, so
        each says it for itself)."""
        status = self.redis() if self.redis is not None else None
        if status is None or status["state"] != "down":
            return []
        message = (
            f"replica {status['replica']} cannot reach Redis: it routes from its own copy of "
            "the pool, and the replicas' limits and bindings are not shared until it is back"
        )
        return [Alert("redis", f"replica {status['replica']}", message)]

    def _departures(self) -> list[Alert]:
        """Replicas that left (stopped, or silent for a minute), while not replaced."""
        status = self.redis() if self.redis is not None else None
        if status is None or status["state"] != "ok":
            return []
        now = set(status["replicas"])
        for gone in self._replicas - now:
            self._left.setdefault(gone, len(self._replicas))
        self._replicas = now
        self._left = {r: count for r, count in self._left.items() if len(now) < count}
        return [
            Alert(
                "replica",
                f"replica {r}",
                f"replica {r} left (stopped, or silent for a minute): "
                f"{len(now)} of {count} replicas serve",
            )
            for r, count in self._left.items()
        ]

    async def check(self) -> None:
        now = self.clock.now()
        await self._say(*self.own.seen(self._own()), now)
        if not self.active():  # another replica leads: it says the pool's alerts
            return
        try:
            every = min(300.0, FORECAST_LOOKS * self.config.interval_seconds)
            if self._forecast is None or now - self._forecast[0] >= every:
                read = await asyncio.to_thread(self._runs_out_at, self.snapshot(), now)
                self._forecast = (now, read)
            runs_out_at = self._forecast[1]
            keys = await asyncio.to_thread(self._key_usages)
        except SQLAlchemyError as exc:  # the database out: the writers' alert says so
            log.debug("alerts: no forecast or key usage (%s)", type(exc).__name__)
            runs_out_at, keys = None, []
        found = self.current(runs_out_at, keys) + self._departures()
        await self._say(*self.episodes.seen(found), now)

    async def _say(self, raised: list[Alert], cleared: list[Alert], now: float) -> None:
        for event, alerts in (("raised", raised), ("cleared", cleared)):
            for alert in alerts:
                if event == "raised":
                    log.warning("alert: %s", alert.message)
                else:
                    log.info("alert cleared: %s", alert.message)
                for n, (webhook, queue) in enumerate(
                    zip(self.config.webhooks, self.queues, strict=True)
                ):
                    try:
                        queue.put_nowait(_payload(webhook, event, alert, now))
                    except asyncio.QueueFull:
                        log.error("webhook #%d: %d alerts wait already; dropped one", n + 1, QUEUED)

    async def _post(self, n: int, webhook: WebhookConfig, payload: dict[str, Any]) -> None:
        """One alert to one webhook, tried again after each wait of `RETRIES` (its URL is never
        logged: a Slack webhook's holds its secret)."""
        url = webhook.url.get_secret_value()
        for wait in (*RETRIES, None):
            try:
                async with asyncio.timeout(POST_SECONDS):
                    async with self.outbound.post_json(url, payload) as answer:
                        if answer.status < 300:
                            return
                        why = f"it answered {answer.status}"
            except NETWORK_ERRORS as exc:  # (a timeout among them)
                why = f"{type(exc).__name__}"
            if wait is None:
                log.error(
                    "webhook #%d: gave up on an alert after %d tries (%s)",
                    n + 1,
                    len(RETRIES) + 1,
                    why,
                )
                return
            log.warning("webhook #%d: %s; trying again in %.0f s", n + 1, why, wait)
            await asyncio.sleep(wait)

    async def _send(
        self, n: int, webhook: WebhookConfig, queue: asyncio.Queue[dict[str, Any]]
    ) -> None:
        while True:
            await self._post(n, webhook, await queue.get())

    async def run(self) -> None:
        for n, webhook in enumerate(self.config.webhooks):
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUED)
            self.queues.append(queue)
            self.tasks.spawn(self._send(n, webhook, queue), f"alerts-webhook-{n + 1}")
        while True:
            await asyncio.sleep(self.config.interval_seconds)
            try:
                await self.check()
            except Exception:  # a look that fails (the database out) must not end the job
                log.exception("alerts: the pool could not be looked at")
