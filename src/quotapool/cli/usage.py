"""`quotapool usage`: requests, tokens and cost per key, account, model or profile, per day,
week or month — a table, CSV or JSON (a key's monthly report to send on)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import orjson
import typer

from quotapool.cli.common import ConfigOption, clock, console, fail


class By(StrEnum):
    key = "key"
    credential = "credential"
    model = "model"
    profile = "profile"


class Period(StrEnum):
    day = "day"
    week = "week"
    month = "month"


def usage(
    by: Annotated[
        By, typer.Option(help="Rows per client key, credential, model or profile")
    ] = By.key,
    period: Annotated[
        Period, typer.Option(help="Per day, week (from Monday) or month, UTC")
    ] = Period.day,
    since: Annotated[str, typer.Option(help="How far back: 7d, 5w, 90d…")] = "30d",
    key: Annotated[str | None, typer.Option(help="Only this client key's requests")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV, for a spreadsheet")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    config: ConfigOption = None,
) -> None:
    """Requests that reached an upstream, their tokens and cost (at `[routing.pricing]`'s
    prices), grouped. A key's monthly report: `usage --key NAME --by model --period month`."""
    from quotapool.cli.pool_view import database, settings_of
    from quotapool.domain.client import parse_duration
    from quotapool.routing.pricing import DEFAULT_PRICES
    from quotapool.store.usage import as_csv as csv_of
    from quotapool.store.usage import usage as usage_rows

    settings = settings_of(config)
    try:
        start = clock.now() - parse_duration(since)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    prices = {**DEFAULT_PRICES, **settings.routing.pricing}
    engine = database(settings)
    rows = usage_rows(
        engine, by.value, period.value if period is not Period.day else 86400.0, start, prices, key
    )
    if as_csv:
        typer.echo(csv_of(rows, by.value), nl=False)
        return
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    if not rows:
        console.print("no requests in that time")
        return
    from rich.table import Table

    table = Table(expand=False, pad_edge=False)
    for column in (period.value, by.value, "requests", "tokens in", "out", "cached", "USD"):
        table.add_column(
            column, no_wrap=True, justify="left" if column in (period.value, by.value) else "right"
        )
    shown = "%Y-%m" if period is Period.month else "%Y-%m-%d"
    for row in rows:
        table.add_row(
            datetime.fromtimestamp(row["at"], UTC).strftime(shown),
            row[by.value] or "-",
            f"{row['requests']:,}",
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            f"{row['cached_tokens']:,}",
            f"{row['cost']:.2f}",
        )
    console.print(table)
