"""The composition root: settings in, a wired application out. Nothing else reads settings."""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import Engine, make_url
from sqlalchemy import exc as sa_exc

from quotapool import __version__
from quotapool.accounts.live import LiveAccounts
from quotapool.accounts.refresh import TokenRefresher
from quotapool.admin.app import build_admin
from quotapool.admin.control import Control
from quotapool.admin.session import Sessions
from quotapool.clock import Clock, SystemClock
from quotapool.config import ConfigError, RoutingConfig, Settings
from quotapool.control.catalogue import CodexCatalogue, models_answer, served_models
from quotapool.control.keys import KeyRing
from quotapool.control.metrics import Metrics
from quotapool.control.routing import LiveRouting
from quotapool.control.views import pool_usage, pool_view
from quotapool.domain.api import Api
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.egress import Egress
from quotapool.domain.outcome import StatusSet
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.state import Status
from quotapool.jobs.status_watch import StatusWatch
from quotapool.jobs.usage_poller import UsagePoller
from quotapool.jobs.warmup import Warmups
from quotapool.net.aiohttp import AiohttpClient
from quotapool.net.egress import Egresses, connector
from quotapool.problem import Problem
from quotapool.proxy.access_log import AccessLog
from quotapool.proxy.app import READY, ProxyApp
from quotapool.proxy.attempt import Attempts, RelaySettings
from quotapool.proxy.conversations import Conversations
from quotapool.proxy.dispatcher import Dispatcher
from quotapool.proxy.errors import Dialect
from quotapool.proxy.failover import Chooser, TokenGate
from quotapool.proxy.guard import Guard
from quotapool.proxy.relay import EventBounds
from quotapool.proxy.ws import WebSocketBridge
from quotapool.routing.base import RoutingPolicy
from quotapool.routing.filters import available
from quotapool.routing.pricing import DEFAULT_PRICES
from quotapool.routing.profiles import CLAUDE_MODELS, Profile, Routing, Warmup
from quotapool.routing.registry import build_strategy
from quotapool.secrets import KEY_FILE_NAME, Redactor, Secret, SecretBox, load_or_create_key
from quotapool.store.accounts import AccountStore
from quotapool.store.affinity import PersistentAffinityStore
from quotapool.store.batch import BatchWriter
from quotapool.store.client_keys import ClientKeyStore
from quotapool.store.memory import MemoryPoolStore
from quotapool.store.redis.replication import Replication
from quotapool.store.response_items import ResponseItems
from quotapool.store.routing_overrides import RoutingOverrides
from quotapool.store.sql.db import make_engine, migrate, missing_driver, refusal_reason
from quotapool.store.sql.schema import usage_history
from quotapool.store.usage_history import UsageHistory
from quotapool.tasks import TaskSet
from quotapool.upstream.anthropic import AnthropicTransport, ClaudeTransport
from quotapool.upstream.base import Transport
from quotapool.upstream.codex import CodexTransport
from quotapool.upstream.openai import OpenAITransport

log = logging.getLogger(__name__)
STOP_TASKS_SECONDS = 10.0
"""At shutdown, how long background jobs have to stop once cancelled (then it goes on)."""
ELSEWHERE_SECONDS = 1.5
"""With replicas, how long a continuation waits for what the replica that answered its turn
before has not shared yet (`Conversations.elsewhere_seconds`)."""
CODEX_CLIENT_VERSION = "0.169.0"


def credentials_from(settings: Settings) -> tuple[tuple[Credential, ...], dict[str, Secret]]:
    """Pool credentials and their secrets from the `[[credentials]]` entries."""
    credentials: list[Credential] = []
    secrets: dict[str, Secret] = {}
    for entry in settings.credentials:
        if entry.name in secrets:
            raise ConfigError(f"two credentials are named {entry.name!r}; names must be unique")
        default_base = (
            settings.claude_api_base_url if entry.kind is Kind.CLAUDE else settings.codex_base_url
        )
        base_url = (entry.base_url or default_base).rstrip("/")
        egress = entry.egress(settings.network.egress)
        credentials.append(
            Credential(
                id=entry.name,
                name=entry.name,
                kind=entry.kind,
                base_url=base_url,
                models=frozenset(entry.models),
                weight=entry.weight,
                priority=entry.priority,
                plan=entry.plan,
                policy=entry.policy,
                model_map=tuple(entry.model_map.items()),
                prices=tuple(entry.prices.items()),
                account_id=entry.account_id if entry.kind is Kind.CODEX else None,
                apis=frozenset(Api(api) for api in entry.apis),
                serve_any_client=entry.serve_any_client,
                egress=egress.label,
            )
        )
        secrets[entry.name] = Secret(entry.secret(), entry.account_id, egress)
    return tuple(credentials), secrets


def profile_from(name: str, config: RoutingConfig) -> Profile:
    """One routing profile: its strategy chain and the policy data the pure core reads."""
    strategy = build_strategy(
        config.strategy,
        budget_safe=config.budget_safe,
        prefer_earlier_reset=config.prefer_earlier_reset,
    )
    policy = RoutingPolicy(
        budget_threshold=config.budget_threshold,
        reset_bucket_seconds=config.reset_bucket_seconds,
        latency_min_samples=config.latency_min_samples,
        pinned=config.pinned,
        pricing={**DEFAULT_PRICES, **config.pricing},
    )
    warmup = config.warmup
    return Profile(
        name,
        strategy,
        policy,
        members=frozenset(config.credentials) if config.credentials is not None else None,
        weights=dict(config.weights),
        models={str(scenario): model for scenario, model in config.models.items()},
        long_context_tokens=config.long_context_tokens,
        claude_models={**CLAUDE_MODELS, **{str(k): v for k, v in config.claude_models.items()}},
        warmup=Warmup(
            frozenset(warmup.credentials),
            warmup.ttl_seconds,
            warmup.timeout_seconds,
            warmup.model,
        )
        if warmup is not None
        else None,
    )


def routing_from(settings: Settings) -> Routing:
    """Every profile of the configuration (`[routing]` is "default")."""
    profiles = {
        name: profile_from(name, config) for name, config in settings.routing_profiles().items()
    }
    return Routing(profiles, dict(settings.routing.gated_models))


def open_keys(engine: Engine, settings: Settings, clock: Clock) -> KeyRing:
    """The client keys, and what each has spent in its current windows."""
    prices = {**DEFAULT_PRICES, **settings.routing.pricing}
    keys = KeyRing(ClientKeyStore(engine), clock, prices, settings.require_client_keys)
    keys.load()
    return keys


def transports_for(settings: Settings) -> dict[Kind, Transport]:
    return {
        Kind.CODEX: CodexTransport(settings.lenient),
        Kind.OPENAI: OpenAITransport(settings.lenient),
        Kind.ANTHROPIC: AnthropicTransport(settings.anthropic_version, settings.lenient),
        Kind.CLAUDE: ClaudeTransport(settings.anthropic_version, settings.lenient),
    }


def logged(
    request_log: BatchWriter | None, keys: KeyRing, metrics: Metrics | None, access: AccessLog
) -> Callable[[dict[str, Any]], None]:
    """What becomes of a finished request's row: the log, its client key's usage, metrics."""

    def submit(row: dict[str, Any]) -> None:
        if request_log is not None:
            request_log.submit(row)
        if row["client_key"] is not None:
            keys.count(row)
        if metrics is not None:
            metrics.observe(row)
        access(row)

    return submit


def open_conversations(
    engine: Engine, routing: RoutingConfig, now: float
) -> PersistentAffinityStore:
    """Conversation bindings and response-id owners, as an earlier run left them."""
    conversations = PersistentAffinityStore(engine, ttl=routing.affinity_ttl_seconds)
    if loaded := conversations.load(now):
        log.info("%d conversation(s) and response owner(s) kept from the last run", loaded)
    return conversations


def warn_unknown_names(routing: Routing, names: set[str]) -> Routing:
    """A profile naming a credential the pool does not have is allowed (an account may be
    imported later) but said once, at start."""
    for profile in routing.profiles.values():
        named = set(profile.members or ()) | set(profile.weights)
        if profile.warmup is not None:
            named |= profile.warmup.credentials
        if unknown := sorted(named - names):
            log.warning(
                "profile %s names credentials not in the pool: %s", profile.name, ", ".join(unknown)
            )
    return routing


@dataclass
class Drain:
    """Set on SIGTERM when the server drains before it stops: `/ready` then answers 503."""

    until: float | None = None
    """When the listener closes (monotonic seconds)."""

    def start(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    def active(self) -> bool:
        return self.until is not None

    def over(self) -> bool:
        """The drain has run its time: the listener closes."""
        return self.until is not None and time.monotonic() >= self.until

    def status(self) -> dict[str, Any] | None:
        if self.until is None:
            return None
        return {"stops_in_seconds": round(max(0.0, self.until - time.monotonic()), 1)}


@dataclass
class Quotapool:
    """Everything one running quotapool holds."""

    settings: Settings
    app: ProxyApp
    dispatcher: Dispatcher
    pool: MemoryPoolStore
    request_log: BatchWriter | None
    accounts: LiveAccounts
    routing: LiveRouting
    keys: KeyRing
    tasks: TaskSet = field(default_factory=TaskSet)
    drain: Drain = field(default_factory=Drain)


def pool_secrets(secrets: Mapping[str, Secret], refresher: TokenRefresher) -> list[str]:
    """Every key, access token, refresh token and proxy password the pool holds, as it is now."""
    tokens = [secret.token for secret in secrets.values()]
    for secret in secrets.values():  # a proxy's password, and its URL that holds it
        tokens += [t for t in (secret.egress.url, secret.egress.password) if t]
    for state in refresher.accounts.values():
        tokens += [t for t in (state.tokens.access_token, state.tokens.refresh_token) if t]
    return tokens


def readiness(
    pool: MemoryPoolStore,
    clock: Clock,
    writers: list[BatchWriter],
    replication: Replication | None = None,
    drain: Drain | None = None,
) -> tuple[str, dict[str, Any]]:
    """READY while a credential is eligible and the server is not draining to stop; the
    writers' health and the replication's are detail (an outage of the database or of Redis
    does not stop serving: rows wait in the journal, routing goes on from this replica's copy
    of the pool)."""
    snapshot, now = pool.snapshot(), clock.now()
    detail: dict[str, Any] = {str(w.table.name): w.health().as_dict() for w in writers}
    if replication is not None:
        detail["replication"] = replication.status()
    if drain is not None and (draining := drain.status()) is not None:
        return "draining", {"draining": draining, **detail}
    if not any(available(snapshot.state(c.id), now) for c in snapshot.credentials):
        return "no eligible credential", detail
    return READY, detail


def open_accounts(settings: Settings, engine: Engine, *, create_key: bool = True) -> AccountStore:
    """The account store, with the key file (created on first run) that seals its secrets."""
    home = settings.resolved_home
    box = SecretBox(load_or_create_key(home, create=create_key), home / KEY_FILE_NAME)
    return AccountStore(engine, box)


def upstream_session(settings: Settings, egress: Egress) -> aiohttp.ClientSession:
    """The HTTP client session every upstream request that leaves by `egress` goes through."""
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
    )
    return aiohttp.ClientSession(
        connector=connector(egress, limit=0, keepalive_timeout=30),
        timeout=timeout,
        headers={"user-agent": f"quotapool/{__version__}"},
        skip_auto_headers=("Content-Type",),
    )


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


def build(settings: Settings, *, clock: Clock | None = None, worker: int = 0) -> Quotapool:
    """Wire everything; raises ConfigError or KeyFileError with a message saying what to fix.
    `worker`: which of `serve --workers N` this is (each keeps its own journals)."""
    clock = clock or SystemClock()
    configured, secrets = credentials_from(settings)
    engine = open_database(settings)
    store = open_accounts(settings, engine)
    tasks = TaskSet()
    egresses = Egresses(
        lambda egress: upstream_session(settings, egress), secrets, settings.network.egress
    )
    accounts = LiveAccounts(
        store=store,
        box=store.box,
        codex_base_url=settings.codex_base_url,
        configured=configured,
        secrets=secrets,
        clock=clock,
        auth_base_url=settings.auth_base_url.rstrip("/"),
        session=egresses.for_credential,
        tasks=tasks,
        default_egress=settings.network.egress,
        claude_base_url=settings.claude_api_base_url.rstrip("/"),
        claude_auth_base_url=settings.claude_auth_base_url.rstrip("/"),
    )
    credentials, statuses = accounts.load()
    history, request_log = open_writers(engine, settings, worker)
    pool = MemoryPoolStore(PoolSnapshot(tuple(credentials)), observer=UsageHistory(history))
    for credential_id, (status, reason) in statuses.items():
        if status is not Status.ACTIVE:
            pool.apply(StatusSet(credential_id, clock.now(), status, reason))
    refresher = accounts.attach(pool)
    affinity = open_conversations(engine, settings.routing, clock.now())
    live_routing = LiveRouting(
        settings,
        RoutingOverrides(engine),
        routing_from,
        lambda chosen: dispatcher.use_routing(chosen),
        clock.now,
    )
    keys = open_keys(engine, settings, clock)
    writers = [w for w in (request_log, history) if w is not None]
    items = ResponseItems(
        engine,
        ttl=settings.response_items_ttl,
        memory_bytes=settings.response_items_memory_bytes,
    )
    metrics = Metrics(pool.snapshot, clock.now, writers, items.memory) if settings.metrics else None
    access = AccessLog(clock.now)
    submit = logged(request_log, keys, metrics, access)
    replication = None
    if settings.redis_url:  # replicas refresh a token, and warm an account, once between them
        replication = Replication(settings.redis_url, pool, clock, affinity, keys, live_routing)
        refresher.lease = replication
    attempts = Attempts(
        client=AiohttpClient(egresses, settings.max_upstream_event_bytes),
        pool=pool,
        transports=transports_for(settings),
        secrets=secrets,
        clock=clock,
        settings=RelaySettings(
            settings.sse_keepalive_seconds,
            EventBounds(
                settings.max_upstream_event_bytes,
                settings.first_event_timeout_seconds,
                settings.read_timeout,
            ),
        ),
        redact=Redactor(lambda: pool_secrets(secrets, refresher)),
        on_unauthorized=accounts.on_unauthorized,
    )
    warmups = Warmups(attempts, submit, tasks.spawn, claims=replication)
    dispatcher = Dispatcher(
        attempts=attempts,
        conversations=Conversations(
            pool,
            affinity,
            clock,
            sticky=settings.routing.session_affinity,
            items=items,
            elsewhere_seconds=ELSEWHERE_SECONDS if replication is not None else 0.0,
        ),
        chooser=Chooser(
            pool,
            clock,
            random.Random(settings.routing.seed),
            TokenGate(refresher, pool, clock),
            settings.routing.max_attempts,
        ),
        routing=warn_unknown_names(live_routing.current(), {c.name for c in credentials}),
        route_header=settings.routing.route_header,
        warmups=warmups,
    )
    codex_models = CodexCatalogue(
        pool,
        secrets,
        clock,
        CODEX_CLIENT_VERSION,
        egresses.for_credential,
        settings.codex_models_refresh,
    )
    poller = UsagePoller(
        pool=pool,
        secrets=secrets,
        clock=clock,
        session=egresses.for_credential,
        interval=settings.usage_poll_interval,
        on_unauthorized=accounts.on_unauthorized,
        active=lambda: replication is None or replication.leader,
    )

    async def models(dialect: Dialect, model: str | None) -> tuple[int, bytes]:
        if dialect is Dialect.CODEX:
            return 200, await codex_models.fetch()
        ids = served_models(pool.snapshot().credentials, settings.codex_models, dialect)
        return models_answer(ids, dialect, model)

    drain = Drain()

    def ready() -> tuple[str, dict[str, Any]]:
        return readiness(pool, clock, writers, replication, drain)

    async def startup() -> None:
        jobs = {
            "request-log-writer": request_log.run() if request_log is not None else None,
            "usage-history-writer": history.run(),
            "conversations-writer": affinity.run(),
            "accounts-watch": accounts.watch(settings.accounts_watch_interval),
            "client-keys-watch": keys.watch(settings.accounts_watch_interval),
            "status-watch": StatusWatch(pool.snapshot, clock.now).run(),
            "access-log": access.run(),
            "response-items-writer": items.run(clock.now),
            "usage-poller": poller.run() if settings.usage_poll_interval > 0 else None,
            "replication": replication.run() if replication is not None else None,
            "codex-models": codex_models.run() if settings.codex_models_refresh > 0 else None,
        }
        for name, job in jobs.items():
            if job is not None:
                tasks.spawn(job, name)
        log.info(
            "quotapool %s: %d credential(s), strategy %s",
            __version__,
            len(pool.snapshot().credentials),
            dispatcher.routing.default.strategy.name,
        )

    async def shutdown() -> None:
        await tasks.cancel_all(timeout=STOP_TASKS_SECONDS)
        if replication is not None:
            await replication.close()
        await egresses.close()
        engine.dispose()

    app = ProxyApp(
        serve=dispatcher.serve,
        submit=submit,
        models=models,
        ready=ready,
        draining=drain.active,
        pool_view=lambda: pool_view(pool.snapshot(), clock.now(), dispatcher.routing),
        pool_usage=lambda: pool_usage(pool.snapshot(), clock.now()),
        now=clock.now,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout_seconds,
        allow_remote=settings.allow_remote,
        guard=Guard.build(settings.host, settings.allowed_hosts, settings.allowed_origins),
        on_startup=startup,
        on_shutdown=shutdown,
        websocket=WebSocketBridge(dispatcher, submit, keys),
        keys=keys,
        metrics=metrics,
        metrics_public=settings.metrics_public,
        admin=build_admin(
            Control(
                pool=pool,
                accounts=store,
                keys=keys,
                key_store=keys.store,
                engine=engine,
                routing=lambda: dispatcher.routing,
                live_routing=live_routing,
                sessions=Sessions(
                    store.box.derived_key("quotapool dashboard sessions"),
                    lambda: keys.admin_hash,
                    clock.now,
                ),
                now=clock.now,
                reload_accounts=accounts.reload,
                probe=warmups.probe,
            ),
            docs=settings.admin_docs,
        ),
    )
    return Quotapool(
        settings, app, dispatcher, pool, request_log, accounts, live_routing, keys, tasks, drain
    )
