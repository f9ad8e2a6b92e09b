"""`quotapool accounts …`: import, log in, add keys, list, pause, resume, remove, export."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select

from quotapool.accounts import oauth
from quotapool.accounts.import_ import auth_json, read_all
from quotapool.accounts.jwt import TokenError, identity
from quotapool.cli.common import ConfigOption, err, fail
from quotapool.compose import open_accounts
from quotapool.config import ConfigError, Settings, load_settings
from quotapool.domain.credential import Kind
from quotapool.domain.state import Status
from quotapool.secrets import KeyFileError
from quotapool.store.accounts import AccountError, AccountStore, CodexLogin, Tokens
from quotapool.store.sql.db import make_engine, migrate
from quotapool.store.sql.schema import usage_history

app = typer.Typer(no_args_is_help=True, help="Manage the pool's accounts and API keys.")
console = Console()


def _open(config: Path | None) -> tuple[Settings, AccountStore]:
    try:
        settings = load_settings(config)
        engine = make_engine(settings.resolved_database_url)
        migrate(engine)
        return settings, open_accounts(settings, engine)
    except (ConfigError, KeyFileError) as exc:
        raise fail(str(exc)) from None


def _saved(results: list[tuple[str, bool]], logins: list[CodexLogin]) -> None:
    table = Table(title=f"{len(results)} account(s) saved")
    for column in ("name", "email", "plan", "account id", ""):
        table.add_column(column)
    for (name, created), login in zip(results, logins, strict=True):
        table.add_row(
            name,
            login.email or "-",
            login.plan or "-",
            login.account_id,
            "new" if created else "updated",
        )
    console.print(table)


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="auth.json files or directories of them")],
    config: ConfigOption = None,
) -> None:
    """Import Codex auth.json files. Every file is checked first: one bad file imports nothing."""
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("reading auth files", total=None)
        logins, problems = read_all(paths)
        progress.update(task, completed=1, total=1)
    if problems:
        for problem in problems:
            err.print(f"[red]✗[/red] {problem}")
        raise fail(
            f"{len(problems)} problem(s); nothing was imported. Fix or leave out those files."
        )
    _, store = _open(config)
    _saved(store.save_logins(logins, time.time()), logins)


def _login_from(tokens: oauth.TokenSet) -> CodexLogin:
    if not tokens.id_token or not tokens.refresh_token:
        raise fail("the auth server returned no id token or refresh token; try again")
    try:
        who = identity(tokens.id_token, tokens.access_token)
    except TokenError as exc:
        raise fail(f"unreadable id token: {exc}") from None
    return CodexLogin(
        who.key,
        who.account_id,
        who.email,
        who.plan,
        Tokens(tokens.access_token, tokens.refresh_token, tokens.id_token),
        who.expires_at,
        "login",
    )


async def _login_flow(
    auth_base: str, *, device: bool, manual: bool, browser: bool
) -> oauth.TokenSet:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        if device:
            code = await oauth.device_start(session, auth_base)
            console.print(
                f"Open [bold]{code.verification_url}[/bold] and enter the code [bold]{code.user_code}[/bold]"
            )
            return await oauth.device_wait(session, auth_base, code)
        pkce = oauth.new_pkce()
        url = oauth.authorize_url(auth_base, pkce)
        console.print(f"Sign in at:\n{url}", soft_wrap=True)
        if manual:
            pasted = await asyncio.to_thread(
                typer.prompt,
                "After signing in, paste the address the browser ended on (localhost:1455/…)",
            )
            received = oauth.code_from_redirect(pasted, pkce.state)
        else:
            if browser:
                webbrowser.open(url)
            received = await oauth.wait_for_callback(pkce.state)
        return await oauth.exchange_code(session, auth_base, received, pkce.verifier)


@app.command()
def login(
    device: Annotated[
        bool, typer.Option("--device", help="Device-code flow (no browser here)")
    ] = False,
    manual: Annotated[
        bool, typer.Option("--manual", help="Paste the redirect URL (headless)")
    ] = False,
    browser: Annotated[bool, typer.Option(help="Open a browser for the sign-in page")] = True,
    config: ConfigOption = None,
) -> None:
    """Log a ChatGPT account in (OAuth PKCE, callback on localhost:1455) and add it to the pool."""
    settings, store = _open(config)
    try:
        tokens = asyncio.run(
            _login_flow(
                settings.auth_base_url.rstrip("/"), device=device, manual=manual, browser=browser
            )
        )
    except oauth.OAuthError as exc:
        raise fail(str(exc)) from None
    login = _login_from(tokens)
    _saved(store.save_logins([login], time.time()), [login])


@app.command("add-key")
def add_key(
    kind: Annotated[Kind, typer.Option(help="openai or anthropic")],
    name: Annotated[str, typer.Option(help="Name shown in logs and decisions")],
    base_url: Annotated[
        str, typer.Option(help="e.g. https://api.openai.com/v1 or https://api.anthropic.com")
    ],
    api_key_env: Annotated[
        str | None, typer.Option(help="Read the key from this environment variable")
    ] = None,
    api_key_stdin: Annotated[bool, typer.Option(help="Read the key from standard input")] = False,
    models: Annotated[str, typer.Option(help="Comma-separated models it serves (empty: any)")] = "",
    weight: Annotated[float, typer.Option(min=0.0001)] = 1.0,
    priority: Annotated[int, typer.Option()] = 0,
    config: ConfigOption = None,
) -> None:
    """Add an API key (stored encrypted; never passed on the command line)."""
    if kind is Kind.CODEX:
        raise fail("Codex accounts come from `accounts import` or `accounts login`")
    if api_key_stdin == (api_key_env is not None):
        raise fail("give exactly one of --api-key-env VAR or --api-key-stdin")
    key = sys.stdin.readline().strip() if api_key_stdin else os.environ.get(api_key_env or "", "")
    if not key:
        raise fail("the key is empty" + (f" (is {api_key_env} set?)" if api_key_env else ""))
    _, store = _open(config)
    try:
        store.add_key(
            kind=kind,
            name=name,
            base_url=base_url,
            api_key=key,
            models=[m.strip() for m in models.split(",") if m.strip()],
            weight=weight,
            priority=priority,
            now=time.time(),
        )
    except AccountError as exc:
        raise fail(str(exc)) from None
    console.print(f"added {kind.value} key [bold]{name}[/bold]")


def _live(settings: Settings) -> dict[str, dict[str, Any]] | None:
    """The running server's view of the pool, if one answers on the configured port."""
    try:
        response = httpx.get(f"http://127.0.0.1:{settings.port}/quotapool/pool", timeout=1.0)
        rows: list[dict[str, Any]] = response.json()["credentials"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return {row["name"]: row for row in rows}


def _history(store: AccountStore) -> dict[tuple[str, str], tuple[float, float | None]]:
    """Latest (used %, reset) per (account, window) from the usage history."""
    latest: dict[tuple[str, str], tuple[float, float | None]] = {}
    query = select(usage_history).order_by(usage_history.c.at.desc()).limit(5000)
    with store.engine.connect() as connection:
        for row in connection.execute(query).mappings():
            latest.setdefault(
                (row["credential"], row["window"]), (row["used_percent"], row["resets_at"])
            )
    return latest


def _in(seconds: float | None) -> str:
    if seconds is None or seconds <= 0:
        return "-"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours // 24}d {hours % 24}h" if hours >= 24 else f"{hours}h {rest // 60}m"


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    config: ConfigOption = None,
) -> None:
    """Every account: plan, status, 5-hour and weekly use, when they reset, requests in flight."""
    settings, store = _open(config)
    live, now = _live(settings), time.time()
    history = _history(store) if live is None else {}
    rows = []
    for account in store.all():
        view = (live or {}).get(account.name, {})
        primary = (view.get("primary") or {}) if live else None
        secondary = (view.get("secondary") or {}) if live else None
        used5, reset5 = (
            (primary.get("used_percent"), primary.get("resets_at"))
            if primary
            else history.get((account.name, "primary"), (None, None))
        )
        usedw, resetw = (
            (secondary.get("used_percent"), secondary.get("resets_at"))
            if secondary
            else history.get((account.name, "secondary"), (None, None))
        )
        rows.append(
            {
                "name": account.name,
                "kind": account.kind.value,
                "email": account.email,
                "plan": account.plan,
                "status": view.get("status", account.status),
                "reason": view.get("reason", account.status_reason),
                "primary_used_percent": used5,
                "primary_resets_at": reset5,
                "secondary_used_percent": usedw,
                "secondary_resets_at": resetw,
                "in_flight": view.get("in_flight") if live else None,
            }
        )
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    title = (
        "accounts (live from the running server)"
        if live
        else "accounts (from the database; server not running)"
    )
    table = Table(title=title)
    for column in (
        "name",
        "kind",
        "plan",
        "status",
        "5 h used",
        "resets in",
        "weekly used",
        "resets in",
        "in flight",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            row["plan"] or "-",
            row["status"]
            + (f" ({row['reason']})" if row["reason"] and row["status"] != "active" else ""),
            f"{row['primary_used_percent']:.0f}%"
            if row["primary_used_percent"] is not None
            else "-",
            _in(row["primary_resets_at"] - now if row["primary_resets_at"] else None),
            f"{row['secondary_used_percent']:.0f}%"
            if row["secondary_used_percent"] is not None
            else "-",
            _in(row["secondary_resets_at"] - now if row["secondary_resets_at"] else None),
            str(row["in_flight"]) if row["in_flight"] is not None else "-",
        )
    console.print(table)


def _set_status(name: str, status: Status, config: Path | None, reason: str | None = None) -> None:
    _, store = _open(config)
    try:
        store.set_status(name, status.value, reason, time.time())
    except AccountError as exc:
        raise fail(str(exc)) from None
    console.print(f"{name}: {status.value} (a running server picks this up within seconds)")


@app.command()
def pause(name: str, config: ConfigOption = None) -> None:
    """Take an account out of the pool until `resume`."""
    _set_status(name, Status.PAUSED, config, "paused by operator")


@app.command()
def resume(name: str, config: ConfigOption = None) -> None:
    """Put a paused (or re-logged-in) account back into the pool."""
    _set_status(name, Status.ACTIVE, config)


@app.command()
def remove(name: str, config: ConfigOption = None) -> None:
    """Delete an account and its secrets."""
    _, store = _open(config)
    try:
        store.remove(name)
    except AccountError as exc:
        raise fail(str(exc)) from None
    console.print(f"removed {name}")


@app.command()
def export(
    name: str,
    out: Annotated[
        Path | None, typer.Option(help="Write here (mode 0600) instead of stdout")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write an account back as a Codex auth.json."""
    _, store = _open(config)
    try:
        row = store.get(name)
    except AccountError as exc:
        raise fail(str(exc)) from None
    if row.kind is not Kind.CODEX:
        raise fail(f"{name} is an API key, not a ChatGPT login")
    stamp = (
        datetime.fromtimestamp(row.last_refresh or row.updated_at, UTC)
        .isoformat()
        .replace("+00:00", "Z")
    )
    data = auth_json(row.tokens(store.box), row.account_id, stamp)
    if out is None:
        sys.stdout.buffer.write(data + b"\n")
        return
    out.touch(mode=0o600, exist_ok=True)
    out.chmod(0o600)
    out.write_bytes(data)
    console.print(f"wrote {out}")
