"""`/requests`, `/usage`, `/activity`, `/quota-history`, `/forecast`, `/audit`: what the
request log, the usage history and the audit log say, filtered, paginated, aggregated and
projected."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Response

from quotapool.admin.control import Control
from quotapool.domain.forecast import accounts_of, capacities, report
from quotapool.store.request_log import recent
from quotapool.store.usage import activity, as_csv, burn, quota_history, readings, usage

WEEK_SECONDS = 7 * 86400.0
DAY_SECONDS = 86400.0
Period = Literal["minute", "hour", "day"]
PERIOD_SECONDS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}


def add(api: APIRouter, control: Control) -> None:
    @api.get(
        "/requests",
        summary="Requests with their decisions, newest last",
        description="Pages: pass the first `id` as `before_id` for older rows, the last as "
        "`after_id` for newer ones.",
    )
    def requests(
        credential: str | None = None,
        key: str | None = None,
        model: str | None = None,
        profile: str | None = None,
        status: int | None = None,
        since: float | None = None,
        until: float | None = None,
        after_id: int = 0,
        before_id: int | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        rows = recent(
            control.engine,
            limit,
            after_id=after_id,
            before_id=before_id,
            since=since,
            until=until,
            credential=credential,
            client_key=key,
            status=status,
            model=model,
            profile=profile,
        )
        for row in rows:
            row["decision"] = orjson.loads(row["decision"]) if row["decision"] else None
        return rows

    @api.get(
        "/usage",
        summary="Requests, tokens and cost per credential, key, model or profile",
        description="Per minute, hour, day, week (from Monday) or month, in UTC; of one client "
        "`key` if given (a key's monthly report: `by=model&period=month&key=NAME`); "
        "`format=csv` for a spreadsheet.",
        response_model=None,
    )
    def usage_view(
        by: Literal["credential", "key", "model", "profile"] = "credential",
        period: Period | Literal["week", "month"] = "hour",
        since: float | None = None,
        key: str | None = None,
        format: Literal["json", "csv"] = "json",
    ) -> list[dict[str, Any]] | Response:
        start = since if since is not None else control.now() - WEEK_SECONDS
        every = PERIOD_SECONDS.get(period, period)
        rows = usage(control.engine, by, every, start, control.keys.prices, key)
        if format == "csv":
            return Response(as_csv(rows, by), media_type="text/csv; charset=utf-8")
        return rows

    @api.get("/activity", summary="Requests, errors and failovers per hour or day")
    def activity_view(period: Period = "hour", since: float | None = None) -> list[dict[str, Any]]:
        start = since if since is not None else control.now() - WEEK_SECONDS
        return activity(control.engine, PERIOD_SECONDS[period], start)

    @api.get("/quota-history", summary="Each account's quota readings over time")
    def quota_view(
        credential: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        start = since if since is not None else control.now() - WEEK_SECONDS
        return quota_history(control.engine, start, credential)

    @api.get(
        "/forecast",
        summary="When each subscription's windows and the pool's weekly credits run out",
        description="At the pace of the last hours (each account's quota readings): per account "
        "its 5-hour and weekly windows (pace in percent per hour, when each runs out before its "
        "reset, its use at the reset), and the pool's weekly credits (demand per hour, when "
        "they run out, what expires unused at the next resets).",
    )
    def forecast_view() -> dict[str, Any]:
        now = control.now()
        weekly = capacities((c.name, c.kind, c.plan) for c in control.pool.snapshot().credentials)
        history = readings(control.engine, now - WEEK_SECONDS)
        spent = burn(control.engine, now - DAY_SECONDS)
        return report(accounts_of(history, weekly, now), now, spent)

    @api.get(
        "/audit",
        summary="Every change made through the admin API, the dashboard or the CLI",
        description="Who (dashboard, admin token or cli, and from where), what (`account.pause`, "
        "`key.create`, `routing.set`…), on what, before and after; oldest first.",
    )
    def audit_view(
        since: float | None = None,
        target: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return control.audit.recent(limit, since, target)
