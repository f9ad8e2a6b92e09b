"""What `accounts list`, `pause` and `resume` read and change: the running server's pool through
its admin API (found by its run file, with the CLI's token), else what the database and
quotapool.toml hold."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table
from sqlalchemy import Engine, select

from quotapool.cli.common import audited, clock, fail, in_words
from quotapool.config import ConfigError, Settings, load_settings
from quotapool.control.runfile import Running, read
from quotapool.domain.egress import Egress, parse_egress
from quotapool.secrets import KeyFileError
from quotapool.store.accounts import AccountError, AccountRow, AccountStore
from quotapool.store.sql.schema import usage_history

STATUS_FOR = {"pause": "paused", "resume": "active"}


def settings_of(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc), code=2) from None


def database(settings: Settings) -> Engine:
    """The database, migrated (what reports read: no key file needed)."""
    from quotapool.store.sql.db import make_engine, migrate

    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return engine


def account_store(settings: Settings) -> AccountStore:
    from quotapool.compose import open_accounts

    try:
        return open_accounts(settings, database(settings))
    except KeyFileError as exc:
        raise fail(str(exc)) from None


def _api(running: Running, method: str, path: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {running.token}"}
    url = f"{running.url}/quotapool/api{path}"
    return httpx.request(method, url, headers=headers, timeout=10.0)


def tell_running(settings: Settings) -> None:
    """The server running from this home on this host reads the accounts now, not at its next
    watch (`accounts list` right after an import shows the account). Other replicas see the
    change within `accounts_watch_interval`."""
    running = read(settings.resolved_home, bool(settings.redis_url))
    if running is not None:
        with contextlib.suppress(httpx.HTTPError):
            _api(running, "POST", "/credentials/reload")


def credentials(config: Path | None) -> tuple[list[dict[str, Any]], bool]:
    """Every credential as rows (and whether they are live from a running server)."""
    settings = settings_of(config)
    store = account_store(settings)
    running = read(settings.resolved_home, bool(settings.redis_url))
    if running is not None:
        try:
            answer = _api(running, "GET", "/credentials")
            if answer.status_code == 200:
                emails = {account.name: account.email for account in store.all()}
                live = answer.json()["credentials"]
                return [_live_row(row, emails.get(row["name"])) for row in live], True
        except httpx.HTTPError:
            pass  # stopping, or not ours: fall back to what is stored
    return _stored_rows(settings, store), False


def _live_row(row: dict[str, Any], email: str | None) -> dict[str, Any]:
    primary, secondary = row.get("primary") or {}, row.get("secondary") or {}
    return {
        "name": row["name"],
        "kind": row["kind"],
        "email": email,
        "plan": row["plan"],
        "egress": row.get("egress", "direct"),
        "status": row["status"],
        "reason": row["reason"],
        "back_at": row["back_at"],
        "primary_used_percent": primary.get("used_percent"),
        "primary_resets_at": primary.get("resets_at"),
        "secondary_used_percent": secondary.get("used_percent"),
        "secondary_resets_at": secondary.get("resets_at"),
        "in_flight": row["in_flight"],
    }


def _stored_rows(settings: Settings, store: AccountStore) -> list[dict[str, Any]]:
    """No server: quotapool.toml's credentials, then the accounts with the status kept for
    them and their last quota readings."""
    latest: dict[tuple[str, str], tuple[float, float | None]] = {}
    query = select(usage_history).order_by(usage_history.c.at.desc()).limit(5000)
    with store.engine.connect() as connection:
        for reading in connection.execute(query).mappings():
            key = (reading["credential"], reading["window"])
            latest.setdefault(key, (reading["used_percent"], reading["resets_at"]))
    default = settings.network.egress
    entries: list[tuple[str, str, str | None, str | None, str, str | None, str]] = [
        (c.name, c.kind.value, None, c.plan, "active", None, c.egress(default).label)
        for c in settings.credentials
    ]
    entries += [
        (
            a.name,
            a.kind.value,
            a.email,
            a.plan,
            a.status,
            a.status_reason,
            _egress(a, store, default),
        )
        for a in store.all()
    ]
    rows = []
    for name, kind, email, plan, status, reason, egress in entries:
        used5, reset5 = latest.get((name, "primary"), (None, None))
        usedw, resetw = latest.get((name, "secondary"), (None, None))
        rows.append(
            {
                "name": name,
                "kind": kind,
                "email": email,
                "plan": plan,
                "egress": egress,
                "status": status,
                "reason": reason,
                "back_at": None,
                "primary_used_percent": used5,
                "primary_resets_at": reset5,
                "secondary_used_percent": usedw,
                "secondary_resets_at": resetw,
                "in_flight": None,
            }
        )
    return rows


def _egress(row: AccountRow, store: AccountStore, default: Egress) -> str:
    own = row.proxy(store.box)
    return (default if own is None else parse_egress(own)).label


def credential_table(rows: list[dict[str, Any]], live: bool, now: float) -> Table:
    """One line per credential at 80 columns (why one is out follows the table: `notes`)."""
    title = (
        "credentials (live from the running server)"
        if live
        else "credentials (stored; no server running: limits it learned are not shown)"
    )
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=22)
    table.add_column("status", no_wrap=True)
    table.add_column("5 h", no_wrap=True)
    table.add_column("weekly", no_wrap=True)
    table.add_column("back in", no_wrap=True)
    table.add_column("busy", no_wrap=True, justify="right")
    for row in rows:
        status = row["status"] + ("*" if _why_out(row) else "")
        table.add_row(
            row["name"] + (f" ({row['plan']})" if row["plan"] else ""),
            status,
            _window(row["primary_used_percent"], row["primary_resets_at"], now),
            _window(row["secondary_used_percent"], row["secondary_resets_at"], now),
            in_words(row["back_at"] - now if row["back_at"] else None),
            str(row["in_flight"]) if row["in_flight"] is not None else "-",
        )
    return table


def _why_out(row: dict[str, Any]) -> str | None:
    return row["reason"] if row["reason"] and row["status"] != "active" else None


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """Why each credential marked * is out, and what to do, whole; then the egress of those
    that do not connect directly."""
    out = [f"* {row['name']}: {why}" for row in rows if (why := _why_out(row))]
    return out + [
        f"→ {row['name']} connects through {row['egress']}"
        for row in rows
        if row.get("egress", "direct") != "direct"
    ]


def _window(used: float | None, resets_at: float | None, now: float) -> str:
    if used is None:
        return "-"
    if resets_at is not None and resets_at <= now:
        return "reset"  # a reading from before its window reset
    resets = f" ↻{in_words(resets_at - now)}" if resets_at else ""
    return f"{used:.0f}%{resets}"


def set_status(name: str, action: str, config: Path | None) -> str:
    """Pause or resume `name` in the running server (accounts keep it over restarts), else in
    the database; what to print."""
    settings = settings_of(config)
    running = read(settings.resolved_home, bool(settings.redis_url))
    if running is not None:
        try:
            answer = _api(running, "POST", f"/credentials/{name}/{action}")
        except httpx.HTTPError:
            answer = None
        if answer is not None:
            if answer.status_code != 200:
                raise fail(answer.json()["error"]["message"])
            return f"{name}: {answer.json()['status']} (in the running server)"
    store = account_store(settings)
    if any(c.name == name for c in settings.credentials):
        raise fail(
            f"{name!r} comes from quotapool.toml: it can be paused while the server runs "
            "(until it stops), or taken out of the file"
        )
    reason = "paused by operator" if action == "pause" else None
    try:
        store.set_status(name, STATUS_FOR[action], reason, clock.now())
    except AccountError as exc:
        raise fail(str(exc)) from None
    audited(store.engine, f"account.{action}", name, None, {"status": STATUS_FOR[action]})
    return f"{name}: {STATUS_FOR[action]} (a server started later keeps it)"
