"""Engines and migrations for SQLite (default, WAL) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from quotapool.secrets import private_file, private_home

MIGRATIONS = Path(__file__).parent / "migrations"
SIDE_FILES = ("-wal", "-shm")
"""SQLite creates these with the database's mode; ones left by an older run are made 0600."""


POSTGRES_DRIVER = "pip install 'quotapool[postgres]'"


def missing_driver(url: str) -> str | None:
    """Why this install cannot open `url`'s kind of database (one line saying what to install),
    or None."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        return f"database_url {url.split('://', 1)[0]!r}… is not a database URL"
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        return (
            f"database_url: quotapool keeps its log in SQLite or PostgreSQL, not {backend} "
            "(postgresql://USER@HOST/DB)"
        )
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, sa_exc.NoSuchModuleError) as exc:
        if backend == "postgresql" and parsed.drivername in ("postgresql", "postgresql+psycopg"):
            return f"the PostgreSQL driver is not installed: {POSTGRES_DRIVER} (psycopg 3)"
        return f"the driver of database_url ({parsed.drivername}) is not installed ({exc})"
    return None


def refusal_reason(exc: BaseException) -> str:
    """The first line of what the database (or its driver) said when it refused."""
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return said[0] if said else type(exc).__name__


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder created and WAL mode."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            database = Path(path)
            private_home(database.parent)
            private_file(database)
            for suffix in SIDE_FILES:
                if (side := database.with_name(database.name + suffix)).exists():
                    side.chmod(0o600)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A database that does not answer fails a write in seconds (its rows then wait in the
    # journal) instead of holding the writer for the operating system's TCP timeout.
    connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration. On PostgreSQL, replicas starting at once take
    turns (a lock for the schema, held until the migration commits): the first migrates, the
    others find nothing left to do (before, all but one failed on a duplicate table)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            lock = "SELECT pg_advisory_xact_lock(hashtext('quotapool:' || current_schema()))"
            connection.execute(text(lock))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def upsert_insert(engine: Engine) -> Any:
    """The `insert` of `engine`'s dialect that has `on_conflict_do_update` (SQLite, PostgreSQL)."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
