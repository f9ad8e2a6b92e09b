"""`quotapool keys …`: client API keys, each with its models, profile and limits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from quotapool.cli.common import ConfigOption, audited, clock, console, err, fail
from quotapool.domain.client import ClientKey, Measure, number, parse_duration, parse_limit

if TYPE_CHECKING:  # the rest is imported by the commands that need it: a quick --help
    from quotapool.config import Settings
    from quotapool.store.client_keys import ClientKeyStore
    from quotapool.store.usage import Spent

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: fast to start, reads in any terminal
    help="Client API keys: once one exists, every client must send one.",
)
JsonOption = Annotated[bool, typer.Option("--json", help="The whole record as JSON")]


def _open(config: Path | None) -> tuple[Settings, ClientKeyStore]:
    from quotapool.config import ConfigError, load_settings
    from quotapool.store.client_keys import ClientKeyStore
    from quotapool.store.sql.db import make_engine, migrate

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return settings, ClientKeyStore(engine)


def _record(key: ClientKey, secret: str | None = None) -> dict[str, Any]:
    record = key.public()
    if secret is not None:
        record["key"] = secret
    return record


def _issued(key: ClientKey, secret: str, as_json: bool, what: str) -> None:
    """The secret goes alone on the last line of stdout (scripts capture it); never again."""
    if as_json:
        typer.echo(orjson.dumps(_record(key, secret)).decode())
        return
    err.print(f"{what} key {key.name!r}; it is shown once, keep it now:", markup=False)
    typer.echo(secret)


@app.command()
def create(
    name: str,
    models: Annotated[
        list[str] | None, typer.Option("--models", help="Allowed model (repeat); default: any")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Routing profile of its requests")] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option(help="requests=1000/day, tokens=2000000/week, cost=20/month (repeat)"),
    ] = None,
    expires: Annotated[str | None, typer.Option(help="Valid for this long: 30d, 12h, 2w")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it (once)."""
    from quotapool.store.client_keys import ClientKeyError

    settings, store = _open(config)
    now = clock.now()
    try:
        limits = [str(parse_limit(text)) for text in limit or ()]
        expires_at = now + parse_duration(expires) if expires else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    if profile is not None and profile not in settings.routing_profiles():
        known = ", ".join(sorted(settings.routing_profiles()))
        err.print(
            f"warning: the configuration has no routing profile {profile!r} (it has: {known}); "
            "requests with this key are refused until it does",
            markup=False,
        )
    try:
        key, secret = store.create(
            name, now, models=models or (), profile=profile, limits=limits, expires_at=expires_at
        )
    except ClientKeyError as exc:
        raise fail(str(exc)) from None
    audited(store.engine, "key.create", key.name, None, key.audited())
    others = [k for k in store.all() if k.name != key.name and k.usable_at(now)]
    if not others and not as_json:
        _first_key(settings)
    _issued(key, secret, as_json, "created")


def _first_key(settings: Settings) -> None:
    """What the first key changes: every client must now send one (they sent "unused")."""
    from quotapool.config import loopback_url

    base = loopback_url(settings.host, settings.port)
    lines = [
        "This is the first client key: from now on every client must send a key (without",
        "one it gets a 401). Set it where each client takes its API key:",
        f'  openai SDK     OpenAI(base_url="{base}/v1", api_key=KEY)',
        f'  anthropic SDK  Anthropic(base_url="{base}", api_key=KEY)',
        '  curl           -H "Authorization: Bearer $KEY"',
        "  Codex CLI      API-key mode: the variable its env_key names (QP_KEY=KEY);",
        "                 ChatGPT mode: the access_token of the auth.json it uses",
        "  Claude Code    ANTHROPIC_API_KEY=KEY claude   (ANTHROPIC_BASE_URL as before)",
        "  Gemini CLI     GEMINI_API_KEY=KEY gemini   (GOOGLE_GEMINI_BASE_URL as before)",
        "Give each person or service a key of its own: `quotapool keys create NAME`.",
    ]
    for line in lines:
        err.print(line, markup=False, soft_wrap=True)


@app.command()
def rotate(name: str, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Give a key a new secret (same name, limits and usage); the old one stops working."""
    from quotapool.store.client_keys import ClientKeyError

    _, store = _open(config)
    try:
        key, secret = store.rotate(name, clock.now())
    except ClientKeyError as exc:
        raise fail(str(exc)) from None
    audited(store.engine, "key.rotate", key.name)
    _issued(key, secret, as_json, "rotated")


@app.command()
def revoke(name: str, config: ConfigOption = None) -> None:
    """Stop a key from working (a running server notices within seconds)."""
    from quotapool.store.client_keys import ClientKeyError

    _, store = _open(config)
    try:
        key = store.revoke(name, clock.now())
    except ClientKeyError as exc:
        raise fail(str(exc)) from None
    audited(store.engine, "key.revoke", key.name, None, key.audited())
    console.print(f"revoked {name!r}", markup=False)


def _usage(key: ClientKey, store: ClientKeyStore, prices: dict[str, float], now: float) -> str:
    from quotapool.store.usage import spent

    parts = []
    for limit in key.limits:
        used = spent(store.engine, key.name, limit.window(now)[0], prices)
        parts.append(
            f"{_used(used, limit.measure)}/{number(limit.amount)} {limit.measure.value} "
            f"per {limit.period.value}"
        )
    return "; ".join(parts) or "no limits"


def _used(used: Spent, measure: Measure) -> str:
    amount = used.of(measure)
    return f"${amount:.2f}" if measure is Measure.COST else number(float(amount))


@app.command("list")
def list_(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Every key, and its usage against each of its limits."""
    from quotapool.routing.pricing import DEFAULT_PRICES

    settings, store = _open(config)
    prices = {**DEFAULT_PRICES, **settings.routing.pricing}
    now = clock.now()
    keys = store.all()
    if as_json:
        for key in keys:
            record = _record(key)
            record["usage"] = _usage(key, store, prices, now)
            typer.echo(orjson.dumps(record).decode())
        return
    from rich.table import Table

    table = Table(title=f"{len(keys)} client key(s)")
    for column in ("name", "prefix", "state", "profile", "models", "usage"):
        table.add_column(column, overflow="fold")
    for key in keys:
        state = "active" if key.usable_at(now) else "revoked" if key.revoked_at else "expired"
        table.add_row(
            key.name,
            key.prefix + "…",
            state,
            key.profile or "-",
            ", ".join(sorted(key.models)) or "any",
            _usage(key, store, prices, now),
        )
    console.print(table)


admin_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: fast to start, reads in any terminal
    help="The admin token (dashboard, admin API, /metrics).",
)


@admin_app.command()
def token(config: ConfigOption = None) -> None:
    """Make a new admin token and print it once (the old one stops working)."""
    _, store = _open(config)
    secret = store.new_admin_token(clock.now())
    audited(store.engine, "admin.token", "admin token")  # (the token itself is never kept)
    err.print("a new admin token; it is shown once, keep it now:", markup=False)
    typer.echo(secret)
