"""`quotapool audit`: who changed what in the pool, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
import typer

from quotapool.cli.common import ConfigOption, clock, console


def audit(
    last: Annotated[int, typer.Option("--last", "-n", help="How many")] = 20,
    target: Annotated[
        str | None, typer.Option(help="Only changes of this account, key or profile")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    config: ConfigOption = None,
) -> None:
    """Every change made through the admin API, the dashboard or the command line: when, who
    (and from where), what, on what, from what to what."""
    from quotapool.cli.pool_view import database, settings_of
    from quotapool.store.audit import AuditLog

    engine = database(settings_of(config))
    rows = AuditLog(engine, clock).recent(last, target=target)
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    if not rows:
        console.print("no changes recorded yet")
        return
    for row in rows:
        when = datetime.fromtimestamp(row["at"]).strftime("%Y-%m-%d %H:%M:%S")
        line = f"{when}  {row['action']} {row['target']}  by {row['actor']}{_change(row)}"
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _change(row: dict[str, Any]) -> str:
    before, after = row["before"] or {}, row["after"] or {}
    changed = [
        f"{name}: {before.get(name)} → {after.get(name)}"
        for name in dict.fromkeys([*before, *after])
        if before.get(name) != after.get(name) and name in before
    ]
    if changed:
        return " (" + "; ".join(changed) + ")"
    return " (" + ", ".join(f"{k}: {v}" for k, v in after.items()) + ")" if after else ""
