"""Phase one of the composition: what is kept on disk — the database (its schema brought up to
date), the accounts and their key file, the request log and usage history with their journals,
conversations, client keys, kept turns and routing overrides."""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, make_url
from sqlalchemy import exc as sa_exc

from quotapool.clock import Clock
from quotapool.config import RoutingConfig, Settings
from quotapool.control.keys import KeyRing
from quotapool.problem import Problem
from quotapool.routing.pricing import DEFAULT_PRICES
from quotapool.secrets import KEY_FILE_NAME, SecretBox, load_or_create_key
from quotapool.store.accounts import AccountStore
from quotapool.store.affinity import PersistentAffinityStore
from quotapool.store.batch import BatchWriter
from quotapool.store.client_keys import ClientKeyStore
from quotapool.store.response_items import ResponseItems
from quotapool.store.routing_overrides import RoutingOverrides
from quotapool.store.sql.db import make_engine, migrate, missing_driver, refusal_reason
from quotapool.store.sql.schema import usage_history

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stores:
    engine: Engine
    accounts: AccountStore
    history: BatchWriter
    request_log: BatchWriter | None
    affinity: PersistentAffinityStore
    """Conversation bindings and response-id owners."""
    keys: KeyRing
    items: ResponseItems
    """The conversations kept to expand a `previous_response_id`."""
    overrides: RoutingOverrides

    @property
    def writers(self) -> list[BatchWriter]:
        return [w for w in (self.request_log, self.history) if w is not None]


def open_stores(settings: Settings, clock: Clock, worker: int) -> Stores:
    """Everything on disk, opened (`StartError` when the database cannot be)."""
    engine = open_database(settings)
    history, request_log = open_writers(engine, settings, worker)
    return Stores(
        engine,
        open_accounts(settings, engine),
        history,
        request_log,
        open_conversations(engine, settings.routing, clock.now()),
        open_keys(engine, settings, clock),
        ResponseItems(
            engine,
            ttl=settings.response_items_ttl,
            memory_bytes=settings.response_items_memory_bytes,
        ),
        RoutingOverrides(engine),
    )


class StartError(Problem):
    """quotapool cannot start; the message says why and what to do (one line, no traceback)."""


def open_database(settings: Settings) -> Engine:
    """The database, its schema brought up to date; `StartError` when it cannot be opened."""
    url = settings.resolved_database_url
    if missing := missing_driver(url):
        raise StartError(f"cannot start: {missing}.")
    try:
        engine = make_engine(url)
        migrate(engine)
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        raise StartError(_database_trouble(url, exc)) from exc
    return engine


FULL_DISK_BYTES = 1024 * 1024
"""Less free space than this where the SQLite database lives reads as a full disk."""


def _database_trouble(url: str, exc: BaseException) -> str:
    reason = refusal_reason(exc)
    if url.startswith("sqlite") and ":///" in url:
        folder = Path(url.split(":///", 1)[1]).parent
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(folder).free
            if free < FULL_DISK_BYTES or getattr(exc, "errno", None) == errno.ENOSPC:
                return (
                    f"cannot start: the disk that holds {folder} is full ({free} bytes free; "
                    f"SQLite says: {reason}). Free some space, then start again."
                )
    shown = make_url(url).render_as_string(hide_password=True)
    return f"cannot start: the database {shown} cannot be opened ({reason})."


def prepare(settings: Settings) -> None:
    """What workers would otherwise race to do at their first start: the schema and the key
    file."""
    engine = open_database(settings)
    try:
        open_accounts(settings, engine)
    finally:
        engine.dispose()


def open_accounts(settings: Settings, engine: Engine, *, create_key: bool = True) -> AccountStore:
    """The account store, with the key file (created on first run) that seals its secrets."""
    home = settings.resolved_home
    box = SecretBox(load_or_create_key(home, create=create_key), home / KEY_FILE_NAME)
    return AccountStore(engine, box)


def open_writers(
    engine: Engine, settings: Settings, worker: int
) -> tuple[BatchWriter, BatchWriter | None]:
    """The usage-history and request-log writers, each with its journal: one per worker, and
    per host when replicas share the pool (and may share a home, as in docker-compose.yml)."""
    journals = settings.resolved_home / "journal"
    suffix = f".{worker}" if worker else ""
    if settings.redis_url:
        suffix = f".{socket.gethostname()}.{worker}"
    history = BatchWriter(engine, usage_history, journal=journals / f"usage_history{suffix}.jsonl")
    if not settings.request_log:
        return history, None
    return history, BatchWriter(
        engine,
        journal=journals / f"requests{suffix}.jsonl",
        write_ahead=settings.request_log_write_ahead,
    )


def open_keys(engine: Engine, settings: Settings, clock: Clock) -> KeyRing:
    """The client keys, and what each has spent in its current windows."""
    prices = {**DEFAULT_PRICES, **settings.routing.pricing}
    keys = KeyRing(ClientKeyStore(engine), clock, prices, settings.require_client_keys)
    keys.load()
    return keys


def open_conversations(
    engine: Engine, routing: RoutingConfig, now: float
) -> PersistentAffinityStore:
    """Conversation bindings and response-id owners, as an earlier run left them."""
    conversations = PersistentAffinityStore(engine, ttl=routing.affinity_ttl_seconds)
    if loaded := conversations.load(now):
        log.info("%d conversation(s) and response owner(s) kept from the last run", loaded)
    return conversations
