"""`quotapool config check` and `quotapool init`: a configuration that is valid before the
server starts."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from quotapool.cli.common import ConfigOption, err, fail

if TYPE_CHECKING:
    from quotapool.config import Settings

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Check the configuration.")


@app.command()
def check(
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every setting in effect (secrets masked)")
    ] = False,
) -> None:
    """Validate the configuration, reach its database and Redis, and say what is in effect."""
    from quotapool.config import ConfigError, load_settings, resolved_config_path
    from quotapool.proxy.guard import is_loopback

    try:
        settings = load_settings(config)
        for credential in settings.credentials:
            credential.secret()  # an api_key_env that is not set fails here, not at start
    except ConfigError as exc:
        raise fail(str(exc), code=2) from None
    if as_json:
        effective = settings.model_dump(mode="json")
        for name, value in effective.items():  # a database or Redis URL may carry a password
            if name.endswith("_url") and isinstance(value, str):
                effective[name] = _masked(value)
        typer.echo(orjson.dumps(effective, option=orjson.OPT_INDENT_2))
    path = resolved_config_path(config)
    source = str(path) if path.exists() else "no file: defaults and environment"
    database_ok, database = _database(settings)
    redis_ok, redis_said = _redis(settings)
    listen = f"{settings.host}:{settings.port}"
    rows = [
        ("file", source),
        ("home", str(settings.resolved_home)),
        ("listen", listen + ("" if is_loopback(settings.host) else " (clients need keys)")),
        ("strategy", settings.routing.strategy),
        ("credentials", f"{len(settings.credentials)} in the file (+ `quotapool accounts`)"),
        ("database", database),
        ("redis", redis_said),
    ]
    for name, value in rows:
        err.print(f"  {name:<12} {value}", markup=False, soft_wrap=True)
    if not (database_ok and redis_ok):
        raise fail("configuration valid, but quotapool cannot start with it (see above)")
    err.print("configuration OK" + ("" if as_json else "; --json prints every setting"))


def _masked(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _database(settings: Settings) -> tuple[bool, str]:
    """Whether the database can be opened (its driver installed, the server answering)."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    from quotapool.store.sql.db import make_engine, missing_driver, refusal_reason

    url = settings.resolved_database_url
    shown = _masked(url)
    if missing := missing_driver(url):
        return False, f"{shown}: {missing}"
    if url.startswith("sqlite"):
        return True, f"SQLite, {url.split(':///', 1)[-1]}"
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except sa_exc.SQLAlchemyError as exc:
        return False, f"{shown}: cannot connect ({refusal_reason(exc)})"
    finally:
        engine.dispose()
    return True, f"{shown} (connected)"


def _redis(settings: Settings) -> tuple[bool, str]:
    if not settings.redis_url:
        return True, "none (one server; replicas and --workers need redis_url)"
    import redis

    shown = _masked(settings.redis_url)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        return False, f"{shown}: cannot reach it ({exc})"
    finally:
        client.close()
    return True, f"{shown} (connected)"


def init(
    path: Annotated[
        Path | None,
        typer.Argument(help="Where to write it (default: $QUOTAPOOL_HOME/quotapool.toml)"),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a file that exists")] = False,
) -> None:
    """Write a commented sample configuration to start from."""
    from quotapool.config import resolved_config_path
    from quotapool.secrets import private_home

    target = path or resolved_config_path(None)
    if target.exists() and not force:
        raise fail(f"{target} exists; pass --force to replace it")
    if target.parent == resolved_config_path(None).parent:
        private_home(target.parent)  # the home holds the key file: 0700, as `serve` makes it
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(files("quotapool").joinpath("sample.toml").read_text())
    err.print(f"wrote {target}; edit it, then run `quotapool config check`", markup=False)
