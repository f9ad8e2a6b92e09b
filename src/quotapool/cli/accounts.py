"""`quotapool accounts …`: import, log in, add keys, list, pause, resume, remove, export."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from quotapool.cli import signin
from quotapool.cli.common import ConfigOption, audited, clock, console, err, fail
from quotapool.domain.credential import Kind

if TYPE_CHECKING:  # the rest is imported by the commands that need it: a quick --help
    from quotapool.config import Settings
    from quotapool.net.client import Outbound
    from quotapool.store.accounts import AccountStore, Login

app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Manage the pool's accounts and API keys."
)


def _open(config: Path | None) -> tuple[Settings, AccountStore]:
    from quotapool.compose import open_accounts
    from quotapool.config import ConfigError, load_settings
    from quotapool.secrets import KeyFileError
    from quotapool.store.sql.db import make_engine, migrate

    try:
        settings = load_settings(config)
        engine = make_engine(settings.resolved_database_url)
        migrate(engine)
        return settings, open_accounts(settings, engine)
    except (ConfigError, KeyFileError) as exc:
        raise fail(str(exc)) from None


ProxyOption = Annotated[
    str | None,
    typer.Option(
        "--proxy",
        help="Its egress: an http://, https://, socks4://, socks5:// or socks5h:// proxy URL "
        '(user:password@ allowed), or "direct" (default: [network] proxy_url)',
    ),
]
ProxyEnvOption = Annotated[
    str | None,
    typer.Option(
        help="Read the --proxy URL from this environment variable (keeps a password off the command line)"
    ),
]


def _proxy(proxy: str | None, proxy_env: str | None) -> str | None:
    """The egress given on the command line, checked ("direct" or a proxy URL); None: none."""
    from quotapool.domain.egress import EgressConfigError, parse_egress

    if proxy is not None and proxy_env is not None:
        raise fail("give --proxy or --proxy-env, not both")
    if proxy_env is not None:
        proxy = os.environ.get(proxy_env)
        if not proxy:
            raise fail(f"environment variable {proxy_env} is not set")
    if proxy is None:
        return None
    try:
        parse_egress(proxy)
    except EgressConfigError as exc:
        raise fail(str(exc)) from None
    return proxy.strip()


def _saved(
    results: list[tuple[str, bool]], logins: list[Login], store: AccountStore, settings: Settings
) -> None:

    from rich.table import Table

    table = Table(title=f"{len(results)} account(s) saved")
    for column in ("name", "email", "plan", "account id", ""):
        table.add_column(column)
    for (name, created), login in zip(results, logins, strict=True):
        after = {"kind": login.kind.value, "plan": login.plan, "email": login.email}
        audited(store.engine, "account.add" if created else "account.login", name, None, after)
        table.add_row(
            name,
            login.email or "-",
            login.plan or "-",
            login.account_id,
            "new" if created else "updated",
        )
    console.print(table)
    _changed(settings)


def _changed(settings: Settings) -> None:
    from quotapool.cli.pool_view import tell_running

    tell_running(settings)


@app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="auth.json or .credentials.json files, directories of them, or - (one file "
            "from standard input)"
        ),
    ],
    proxy: ProxyOption = None,
    proxy_env: ProxyEnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Import the Codex CLI's auth.json files and Claude Code's .credentials.json. Every file is
    checked first: one bad file imports nothing."""
    from rich.progress import Progress

    from quotapool.accounts.import_ import read_all

    egress = _proxy(proxy, proxy_env)
    with Progress(console=err.real(), transient=True) as progress:
        task = progress.add_task("reading auth files", total=None)
        logins, problems = read_all(paths)
        progress.update(task, completed=1, total=1)
    if problems:
        for problem in problems:
            err.print(f"[red]✗[/red] {problem}")
        raise fail(
            f"{len(problems)} problem(s); nothing was imported. Fix or leave out those files."
        )
    settings, store = _open(config)
    logins = _named(logins, settings, egress)
    _saved(store.save_logins(logins, clock.now(), egress), logins, store, settings)


def _named(logins: list[Login], settings: Settings, egress: str | None) -> list[Login]:
    """Claude logins named by their profile (asked through their egress)."""
    import asyncio

    if not any(login.kind is Kind.CLAUDE for login in logins):
        return logins
    from quotapool.accounts import claude_oauth
    from quotapool.accounts.import_ import with_profile
    from quotapool.accounts.oauth import OAuthError

    api_base = settings.claude_api_base_url.rstrip("/")

    async def name(login: Login, way: Outbound) -> Login:
        if login.kind is not Kind.CLAUDE:
            return login
        try:
            found = await claude_oauth.profile(way, api_base, login.tokens.access_token or "")
        except OAuthError as exc:
            why = str(exc)
            if login.expires_at is not None and login.expires_at < clock.now():
                why = "its access token has expired: run `claude` once (it renews it)"
            raise fail(f"{login.source}: {why}; nothing was imported") from None
        return with_profile(login, found)

    async def name_all() -> list[Login]:
        async with signin.outbound(
            egress if egress is not None else _default_proxy(settings)
        ) as way:
            return [await name(login, way) for login in logins]

    return asyncio.run(name_all())


@app.command()
def login(
    device: Annotated[
        bool, typer.Option("--device", help="Device-code flow (no browser here)")
    ] = False,
    manual: Annotated[
        bool, typer.Option("--manual", help="Paste the redirect URL (headless)")
    ] = False,
    browser: Annotated[bool, typer.Option(help="Open a browser for the sign-in page")] = True,
    kind: Annotated[
        Kind, typer.Option(help="codex (a ChatGPT account) or claude (a Claude subscription)")
    ] = Kind.CODEX,
    proxy: ProxyOption = None,
    proxy_env: ProxyEnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Log a ChatGPT account in (OAuth PKCE, callback on localhost:1455), or a Claude
    subscription (`--kind claude`, callback on localhost:54545; `--manual`: paste the code the
    page shows), and add it to the pool."""
    import asyncio

    import aiohttp

    from quotapool.accounts import oauth

    settings, store = _open(config)
    egress = _proxy(proxy, proxy_env)
    way = egress if egress is not None else _default_proxy(settings)
    if kind is Kind.CLAUDE:
        try:
            login = asyncio.run(signin.claude_signin(settings, way, browser=browser, manual=manual))
        except oauth.OAuthError as exc:
            raise fail(str(exc)) from None
        _saved(store.save_logins([login], clock.now(), egress), [login], store, settings)
        return
    if kind is not Kind.CODEX:
        raise fail(f"{kind.value} credentials are keys: `quotapool accounts add-key`")
    try:
        tokens = asyncio.run(
            signin.codex_signin(
                settings.auth_base_url.rstrip("/"),
                way,
                device=device,
                manual=manual,
                browser=browser,
            )
        )
    except oauth.OAuthError as exc:
        raise fail(str(exc)) from None
    except aiohttp.ClientError as exc:
        raise fail(f"cannot reach the auth server: {exc}") from None
    login = signin.login_from(tokens)
    _saved(store.save_logins([login], clock.now(), egress), [login], store, settings)


def _default_proxy(settings: Settings) -> str | None:
    default = settings.network.proxy_url
    return default.get_secret_value() if default is not None else None


@app.command("add-key")
def add_key(
    kind: Annotated[
        Kind,
        typer.Option(help="openai, anthropic, gemini, or claude (a `claude setup-token` token)"),
    ],
    name: Annotated[str, typer.Option(help="Name shown in logs and decisions")],
    base_url: Annotated[
        str | None,
        typer.Option(
            help="e.g. https://api.openai.com/v1 or https://api.anthropic.com "
            "(claude: claude_api_base_url; gemini: gemini_base_url)"
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env", "--token-env", help="Read the key from this environment variable"
        ),
    ] = None,
    api_key_stdin: Annotated[bool, typer.Option(help="Read the key from standard input")] = False,
    models: Annotated[str, typer.Option(help="Comma-separated models it serves (empty: any)")] = "",
    weight: Annotated[float, typer.Option(min=0.0001)] = 1.0,
    priority: Annotated[int, typer.Option()] = 0,
    proxy: ProxyOption = None,
    proxy_env: ProxyEnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Add an API key (stored encrypted; never passed on the command line)."""
    from quotapool.store.accounts import AccountError

    egress = _proxy(proxy, proxy_env)
    if kind is Kind.CODEX:
        raise fail("Codex accounts come from `accounts import` or `accounts login`")
    if base_url is None and kind not in (Kind.CLAUDE, Kind.GEMINI):
        raise fail(f"a {kind.value} key needs --base-url")
    if api_key_stdin == (api_key_env is not None):
        raise fail("give exactly one of --api-key-env VAR or --api-key-stdin")
    key = sys.stdin.readline().strip() if api_key_stdin else os.environ.get(api_key_env or "", "")
    if not key:
        raise fail("the key is empty" + (f" (is {api_key_env} set?)" if api_key_env else ""))
    settings, store = _open(config)
    try:
        store.add_key(
            kind=kind,
            name=name,
            base_url=base_url
            or (settings.gemini_base_url if kind is Kind.GEMINI else settings.claude_api_base_url),
            api_key=key,
            models=[m.strip() for m in models.split(",") if m.strip()],
            weight=weight,
            priority=priority,
            now=clock.now(),
            proxy=egress,
        )
    except AccountError as exc:
        raise fail(str(exc)) from None
    audited(store.engine, "account.add", name, None, {"kind": kind.value, "base_url": base_url})
    console.print(f"added {kind.value} key [bold]{name}[/bold]")
    _changed(settings)


@app.command("set-proxy")
def set_proxy(
    name: str,
    url: Annotated[
        str | None,
        typer.Argument(
            help='A proxy URL, "direct", or "default" ([network] proxy_url, else direct)'
        ),
    ] = None,
    proxy_env: ProxyEnvOption = None,
    config: ConfigOption = None,
) -> None:
    """Set the egress of an account: every connection it makes (requests, WebSocket sessions,
    token refreshes, usage polls, model lists) goes through it. A running server takes it
    within seconds."""
    from quotapool.domain.egress import parse_egress
    from quotapool.store.accounts import AccountError

    if (url is None) == (proxy_env is None):
        raise fail('give the proxy URL ("direct", "default") or --proxy-env VAR')
    default = url is not None and url.strip().lower() == "default"
    egress = None if default else _proxy(url, proxy_env)
    settings, store = _open(config)
    try:
        store.set_proxy(name, egress, clock.now())
    except AccountError as exc:
        raise fail(str(exc)) from None
    shown = "the default egress" if egress is None else parse_egress(egress).label
    audited(store.engine, "account.set-proxy", name, None, {"egress": shown})
    console.print(f"{name} now leaves by {shown}", markup=False, highlight=False)
    _changed(settings)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    config: ConfigOption = None,
) -> None:
    """Every credential (accounts and quotapool.toml's): status and why, 5-hour and weekly use
    with their resets, when it is back, requests in flight."""
    from quotapool.cli.pool_view import credential_table, credentials, notes

    rows, live = credentials(config)
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    console.print(credential_table(rows, live, clock.now()))
    for note in notes(rows):  # whole: the terminal wraps them
        console.print(note, markup=False, highlight=False, soft_wrap=True)


@app.command()
def pause(name: str, config: ConfigOption = None) -> None:
    """Take a credential out of the pool until `resume` (a quotapool.toml one: while the
    server runs)."""
    from quotapool.cli.pool_view import set_status

    console.print(set_status(name, "pause", config), markup=False)


@app.command()
def resume(name: str, config: ConfigOption = None) -> None:
    """Put a paused (or re-logged-in) credential back into the pool."""
    from quotapool.cli.pool_view import set_status

    console.print(set_status(name, "resume", config), markup=False)


@app.command()
def remove(name: str, config: ConfigOption = None) -> None:
    """Delete an account and its secrets."""
    from quotapool.store.accounts import AccountError

    settings, store = _open(config)
    try:
        store.remove(name)
    except AccountError as exc:
        raise fail(str(exc)) from None
    audited(store.engine, "account.remove", name)
    console.print(f"removed {name}")
    _changed(settings)


@app.command()
def export(
    name: str,
    out: Annotated[
        Path | None, typer.Option(help="Write here (mode 0600) instead of stdout")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write an account back as the Codex CLI's auth.json, or a Claude subscription as Claude
    Code's .credentials.json (its refresh token then rotates for one of the two only)."""
    from quotapool.accounts.import_ import auth_json, credentials_json
    from quotapool.store.accounts import AccountError

    _, store = _open(config)
    try:
        row = store.get(name)
    except AccountError as exc:
        raise fail(str(exc)) from None
    tokens = row.tokens(store.box)
    if row.kind is Kind.CLAUDE and tokens.refresh_token:
        data = credentials_json(tokens, row.expires_at, row.plan)
    elif row.kind is Kind.CODEX:
        stamp = (
            datetime.fromtimestamp(row.last_refresh or row.updated_at, UTC)
            .isoformat()
            .replace("+00:00", "Z")
        )
        data = auth_json(tokens, row.account_id, stamp)
    else:
        raise fail(f"{name} is a key, not a ChatGPT or Claude login: nothing to export")
    if out is None:
        sys.stdout.buffer.write(data + b"\n")
        return
    out.touch(mode=0o600, exist_ok=True)
    out.chmod(0o600)
    out.write_bytes(data)
    console.print(f"wrote {out}")
