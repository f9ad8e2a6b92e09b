"""`quotapool forecast`: when each account's windows and the pool's weekly credits run out at
the current pace, and what is on course to expire unused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from quotapool.cli.common import ConfigOption, clock, console, in_words
from quotapool.domain.credential import Kind
from quotapool.domain.forecast import (
    DAY,
    WEEK,
    Account,
    Projection,
    accounts_of,
    capacities,
    report,
    weekday_time,
)

if TYPE_CHECKING:  # imported by the command itself: a quick --help
    from rich.table import Table


def forecast(
    as_json: Annotated[bool, typer.Option("--json", help="The whole forecast as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """When each subscription's 5-hour and weekly windows run out at the pace of the last
    hours, when the pool runs out of weekly credits, and how many expire unused at the next
    resets."""
    from quotapool.cli.pool_view import credentials, database, settings_of
    from quotapool.store.usage import burn, readings

    rows, _live = credentials(config)
    weekly = capacities((row["name"], Kind(row["kind"]), row["plan"]) for row in rows)
    engine = database(settings_of(config))
    now = clock.now()
    accounts = accounts_of(readings(engine, now - WEEK), weekly, now)
    made = report(accounts, now, burn(engine, now - DAY))
    if as_json:
        typer.echo(orjson.dumps(made).decode())
        return
    if not accounts:
        console.print("no ChatGPT or Claude subscription in the pool: nothing to forecast")
        return
    console.print(_table(accounts, now))
    for line in _pool_lines(made["pool"], now):  # type: ignore[arg-type]
        console.print(line, markup=False, highlight=False)


def _table(accounts: list[Account], now: float) -> Table:
    from rich.table import Table

    table = Table(
        title="at the pace of the last hours", title_justify="left", expand=False, pad_edge=False
    )
    table.add_column("account", no_wrap=True, overflow="ellipsis", max_width=20)
    for name in ("5 h", "out in", "weekly", "pace/h", "out in", "at reset", "resets in"):
        table.add_column(name, no_wrap=True, justify="right")
    for account in accounts:
        short, week = account.short, account.week
        table.add_row(
            account.name,
            _used(short),
            _out(short, now),
            _used(week),
            f"{week.pace:.1f}%" if week is not None and week.pace is not None else "-",
            _out(week, now),
            f"{week.at_reset_percent:.0f}%"
            if week is not None and week.at_reset_percent is not None
            else "-",
            in_words(week.resets_at - now if week is not None and week.resets_at else None),
        )
    return table


def _pool_lines(pool: dict[str, Any], now: float) -> list[str]:
    demand, left = pool["demand_credits_per_hour"] or 0.0, pool["left_credits"] or 0.0
    said = f"pool: {left:,.0f} weekly credits left, spent at {demand:,.0f} an hour: "
    out, back = pool["runs_out_at"], pool["back_at"]
    if out is None:
        said += "does not run out in the next two weeks at this pace"
    else:
        said += f"runs out in {in_words(out - now)} ({weekday_time(out)})"
        said += f", back at {weekday_time(back)}" if back is not None else ""
    expiring, share = pool["expiring_credits"] or 0.0, pool["expiring_percent"] or 0.0
    lines = [
        said + ".",
        f"on course to expire unused at the next resets: {expiring:,.0f} credits ({share:.0f} %).",
    ]
    parts = pool.get("spent_by") or []
    if parts:
        shown = "; ".join(
            f"{p['profile']} · {p['model']} {100 * p['share']:.0f} % ({p['credits_per_hour']:,.0f}/h)"
            for p in parts[:5]
        )
        lines.append(f"spent by (profile · model, last day): {shown}.")
    return lines


def _used(window: Projection | None) -> str:
    return "-" if window is None else f"{window.used_percent:.0f}%"


def _out(window: Projection | None, now: float) -> str:
    if window is None or window.pace is None:
        return "-"
    return in_words(window.runs_out_at - now) if window.runs_out_at is not None else "no"
