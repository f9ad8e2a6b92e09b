"""The composition root: settings in, a wired application out. Nothing else reads settings.

In phases, each returning what the next needs: `stores.open_stores` (what is kept on disk),
`core.build_core` (the pool and the way requests go through it), then the jobs that run beside
the requests and the edge (the data plane, the admin app) here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from quotapool import __version__
from quotapool.accounts.live import LiveAccounts
from quotapool.admin.app import build_admin
from quotapool.admin.control import Control
from quotapool.admin.session import Sessions, TrustedUser
from quotapool.clock import Clock, SystemClock
from quotapool.compose.core import Core, build_core, credentials_from
from quotapool.compose.stores import StartError, Stores, open_accounts, open_stores, prepare
from quotapool.config import Settings
from quotapool.control.catalogue import CodexCatalogue, models_answer, served_models
from quotapool.control.keys import KeyRing
from quotapool.control.routing import LiveRouting
from quotapool.control.views import pool_usage, pool_view
from quotapool.jobs.alerts import Alerts
from quotapool.jobs.status_watch import StatusWatch
from quotapool.jobs.usage_poller import UsagePoller
from quotapool.proxy.admission import Admission
from quotapool.proxy.app import ProxyApp
from quotapool.proxy.dispatcher import Dispatcher
from quotapool.proxy.errors import Dialect
from quotapool.proxy.guard import Guard
from quotapool.proxy.routes import READY
from quotapool.proxy.ws import WebSocketBridge
from quotapool.routing.filters import available
from quotapool.store.audit import AuditLog
from quotapool.store.batch import BatchWriter
from quotapool.store.memory import MemoryPoolStore
from quotapool.store.redis.replication import Replication
from quotapool.tasks import TaskSet
from quotapool.tracing import Tracing

__all__ = [
    "Drain",
    "Quotapool",
    "StartError",
    "build",
    "credentials_from",
    "open_accounts",
    "prepare",
]

log = logging.getLogger(__name__)
Job = Callable[[], Coroutine[Any, Any, None]]
"""A background job, started with the server."""
STOP_TASKS_SECONDS = 10.0
"""At shutdown, how long background jobs have to stop once cancelled (then it goes on)."""
CODEX_CLIENT_VERSION = "0.169.0"


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


def build(settings: Settings, *, clock: Clock | None = None, worker: int = 0) -> Quotapool:
    """Wire everything; raises ConfigError or KeyFileError with a message saying what to fix.
    `worker`: which of `serve --workers N` this is (each keeps its own journals)."""
    clock = clock or SystemClock()
    tasks, drain = TaskSet(), Drain()
    stores = open_stores(settings, clock, worker)
    core = build_core(settings, stores, clock, tasks)
    codex_models = CodexCatalogue(
        core.pool,
        core.secrets,
        clock,
        CODEX_CLIENT_VERSION,
        core.outbound,
        settings.codex_models_refresh,
    )
    jobs = background_jobs(settings, stores, core, codex_models, clock, tasks)
    app = edge(settings, stores, core, codex_models, jobs, clock, tasks, drain)
    return Quotapool(
        settings,
        app,
        core.dispatcher,
        core.pool,
        stores.request_log,
        core.accounts,
        core.routing,
        stores.keys,
        tasks,
        drain,
    )


def background_jobs(
    settings: Settings,
    stores: Stores,
    core: Core,
    codex_models: CodexCatalogue,
    clock: Clock,
    tasks: TaskSet,
) -> dict[str, Job]:
    """What runs beside the requests, by name (started with the server)."""
    pool, replication = core.pool, core.replication

    def leader() -> bool:
        return replication is None or replication.leader

    alerts = Alerts(
        settings.alerts,
        pool.snapshot,
        clock,
        stores.engine,
        stores.keys,
        lambda: [w.health() for w in stores.writers],
        core.outbound(""),  # (no credential's: the default egress)
        tasks,
        leader,
        replication.status if replication is not None else None,
    )
    poller = UsagePoller(
        pool=pool,
        secrets=core.secrets,
        clock=clock,
        outbound=core.outbound,
        interval=settings.usage_poll_interval,
        on_unauthorized=core.accounts.on_unauthorized,
        active=leader,
    )
    watch = settings.accounts_watch_interval
    jobs: dict[str, Job | None] = {
        "request-log-writer": stores.request_log.run if stores.request_log else None,
        "usage-history-writer": stores.history.run,
        "conversations-writer": stores.affinity.run,
        "accounts-watch": lambda: core.accounts.watch(watch),
        "client-keys-watch": lambda: stores.keys.watch(watch),
        "status-watch": StatusWatch(pool.snapshot, clock.now).run,
        "access-log": core.access.run,
        "response-items-writer": lambda: stores.items.run(clock.now),
        "usage-poller": poller.run if settings.usage_poll_interval > 0 else None,
        "replication": replication.run if replication is not None else None,
        "codex-models": codex_models.run if settings.codex_models_refresh > 0 else None,
        "alerts": alerts.run,
    }
    return {name: job for name, job in jobs.items() if job is not None}


def edge(
    settings: Settings,
    stores: Stores,
    core: Core,
    codex_models: CodexCatalogue,
    jobs: dict[str, Job],
    clock: Clock,
    tasks: TaskSet,
    drain: Drain,
) -> ProxyApp:
    """The data plane and, under it, the admin app; `jobs` start with it and stop with it."""
    pool, dispatcher, replication, keys = core.pool, core.dispatcher, core.replication, stores.keys

    async def models(dialect: Dialect, model: str | None) -> tuple[int, bytes]:
        if dialect is Dialect.CODEX:
            return 200, await codex_models.fetch()
        ids = served_models(pool.snapshot().credentials, settings.codex_models, dialect)
        return models_answer(ids, dialect, model)

    def ready() -> tuple[str, dict[str, Any]]:
        return readiness(pool, clock, stores.writers, replication, drain)

    async def startup() -> None:
        for name, job in jobs.items():
            tasks.spawn(job(), name)
        log.info(
            "quotapool %s: %d credential(s), strategy %s",
            __version__,
            len(pool.snapshot().credentials),
            dispatcher.routing.default.strategy.name,
        )

    traced = Tracing.build(settings.tracing)
    audit = AuditLog(stores.engine, clock)

    def reloaded(before: dict[str, str], after: dict[str, str]) -> None:
        audit.record("quotapool.toml (SIGHUP)", "routing.reload", "routing", before, after)

    core.routing.on_reloaded = reloaded

    async def shutdown() -> None:
        await tasks.cancel_all(timeout=STOP_TASKS_SECONDS)
        if replication is not None:
            await replication.close()
        await core.egresses.close()
        stores.engine.dispose()
        if traced is not None:
            await asyncio.to_thread(traced.shutdown)  # (exports what is left)

    return ProxyApp(
        serve=dispatcher.serve,
        submit=core.submit,
        models=models,
        ready=ready,
        draining=drain.active,
        pool_view=lambda: pool_view(pool.snapshot(), clock.now(), dispatcher.routing),
        pool_usage=lambda: pool_usage(pool.snapshot(), clock.now()),
        now=clock.now,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout_seconds,
        on_startup=startup,
        on_shutdown=shutdown,
        admission=Admission(
            keys=keys,
            guard=Guard.build(settings.host, settings.allowed_hosts, settings.allowed_origins),
            allow_remote=settings.allow_remote,
            metrics_public=settings.metrics_public,
        ),
        websocket=WebSocketBridge(dispatcher, core.submit, keys),
        metrics=core.metrics,
        tracing=traced,
        admin=build_admin(
            Control(
                pool=pool,
                accounts=stores.accounts,
                keys=keys,
                key_store=keys.store,
                engine=stores.engine,
                routing=lambda: dispatcher.routing,
                live_routing=core.routing,
                sessions=Sessions(
                    stores.accounts.box.derived_key("quotapool dashboard sessions"),
                    lambda: keys.admin_hash,
                    clock.now,
                ),
                now=clock.now,
                reload_accounts=core.accounts.reload,
                probe=core.warmups.probe,
                audit=audit,
                trusted=TrustedUser.of(settings.trusted_user_header, settings.trusted_proxies),
            ),
            docs=settings.admin_docs,
        ),
    )
