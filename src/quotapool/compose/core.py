"""Phase two: the pool and the way requests go through it — credentials and their egress, live
accounts with their token refresh, routing (live, overridable), replication, and the dispatcher
with its attempts, conversations and warmups."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from quotapool import __version__
from quotapool.accounts.live import LiveAccounts
from quotapool.accounts.refresh import TokenRefresher
from quotapool.clock import Clock
from quotapool.compose.stores import Stores
from quotapool.config import ConfigError, RoutingConfig, Settings
from quotapool.control.keys import KeyRing
from quotapool.control.metrics import Metrics
from quotapool.control.routing import LiveRouting
from quotapool.domain.api import Api
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.egress import Egress
from quotapool.domain.outcome import StatusSet
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.state import Status
from quotapool.jobs.warmup import Warmups
from quotapool.net.aiohttp import AiohttpClient
from quotapool.net.client import Outbound
from quotapool.net.egress import Egresses, connector
from quotapool.proxy.access_log import AccessLog
from quotapool.proxy.attempt import Attempts, RelaySettings
from quotapool.proxy.conversations import Conversations
from quotapool.proxy.dispatcher import Dispatcher
from quotapool.proxy.failover import Chooser, TokenGate
from quotapool.proxy.relay import EventBounds
from quotapool.routing.base import RoutingPolicy
from quotapool.routing.pricing import DEFAULT_PRICES
from quotapool.routing.profiles import (
    CLAUDE_MODELS,
    GEMINI_MODELS,
    Fallback,
    Profile,
    Routing,
    Warmup,
)
from quotapool.routing.registry import build_strategy
from quotapool.secrets import Redactor, Secret
from quotapool.store.batch import BatchWriter
from quotapool.store.memory import MemoryPoolStore
from quotapool.store.redis.replication import Replication
from quotapool.store.usage_history import UsageHistory
from quotapool.tasks import TaskSet
from quotapool.upstream.anthropic import AnthropicTransport, ClaudeTransport
from quotapool.upstream.base import Transport
from quotapool.upstream.codex import CodexTransport
from quotapool.upstream.gemini import GeminiTransport
from quotapool.upstream.openai import OpenAITransport

log = logging.getLogger(__name__)
ELSEWHERE_SECONDS = 1.5
"""With replicas, how long a continuation waits for what the replica that answered its turn
before has not shared yet (`Conversations.elsewhere_seconds`)."""


@dataclass(frozen=True, slots=True)
class Core:
    pool: MemoryPoolStore
    secrets: dict[str, Secret]
    accounts: LiveAccounts
    egresses: Egresses
    outbound: Callable[[str], Outbound]
    """A credential's way out, for the calls beside the data plane."""
    routing: LiveRouting
    replication: Replication | None
    dispatcher: Dispatcher
    warmups: Warmups
    submit: Callable[[dict[str, Any]], None]
    """Where a finished request's row goes (`logged`)."""
    metrics: Metrics | None
    access: AccessLog


def build_core(settings: Settings, stores: Stores, clock: Clock, tasks: TaskSet) -> Core:
    """The pool from the configuration and the accounts store, and all a request goes through."""
    configured, secrets = credentials_from(settings)
    egresses = Egresses(
        lambda egress: upstream_session(settings, egress), secrets, settings.network.egress
    )
    client = AiohttpClient(egresses, settings.max_upstream_event_bytes)

    def outbound(credential_id: str) -> Outbound:
        return Outbound(client, egresses.of(credential_id))

    accounts = LiveAccounts(
        store=stores.accounts,
        box=stores.accounts.box,
        codex_base_url=settings.codex_base_url,
        configured=configured,
        secrets=secrets,
        clock=clock,
        auth_base_url=settings.auth_base_url.rstrip("/"),
        outbound=outbound,
        tasks=tasks,
        default_egress=settings.network.egress,
        claude_base_url=settings.claude_api_base_url.rstrip("/"),
        claude_auth_base_url=settings.claude_auth_base_url.rstrip("/"),
    )
    credentials, statuses = accounts.load()
    pool = MemoryPoolStore(PoolSnapshot(tuple(credentials)), observer=UsageHistory(stores.history))
    for credential_id, (status, reason) in statuses.items():
        if status is not Status.ACTIVE:
            pool.apply(StatusSet(credential_id, clock.now(), status, reason))
    refresher = accounts.attach(pool)
    live_routing = LiveRouting(
        settings,
        stores.overrides,
        routing_from,
        lambda chosen: dispatcher.use_routing(chosen),  # (a change made while running)
        clock.now,
    )
    keys, items = stores.keys, stores.items
    metrics = None
    if settings.metrics:
        metrics = Metrics(pool.snapshot, clock.now, stores.writers, items.memory)
    access = AccessLog(clock.now)
    submit = logged(stores.request_log, keys, metrics, access)
    replication = None
    if settings.redis_url:  # replicas refresh a token, and warm an account, once between them
        replication = Replication(
            settings.redis_url, pool, clock, stores.affinity, keys, live_routing
        )
        refresher.lease = replication.leases
    attempts = Attempts(
        client=client,
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
    warmups = Warmups(
        attempts, submit, tasks.spawn, claims=replication.leases if replication else None
    )
    dispatcher = Dispatcher(
        attempts=attempts,
        conversations=Conversations(
            pool,
            stores.affinity,
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
    return Core(
        pool,
        secrets,
        accounts,
        egresses,
        outbound,
        live_routing,
        replication,
        dispatcher,
        warmups,
        submit,
        metrics,
        access,
    )


def credentials_from(settings: Settings) -> tuple[tuple[Credential, ...], dict[str, Secret]]:
    """Pool credentials and their secrets from the `[[credentials]]` entries."""
    credentials: list[Credential] = []
    secrets: dict[str, Secret] = {}
    for entry in settings.credentials:
        if entry.name in secrets:
            raise ConfigError(f"two credentials are named {entry.name!r}; names must be unique")
        default_base = {
            Kind.CLAUDE: settings.claude_api_base_url,
            Kind.GEMINI: settings.gemini_base_url,
        }.get(entry.kind, settings.codex_base_url)
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
        gemini_models={**GEMINI_MODELS, **{str(k): v for k, v in config.gemini_models.items()}},
        fallback=Fallback(dict(config.fallback.chains), config.fallback.return_ == "at once"),
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


def transports_for(settings: Settings) -> dict[Kind, Transport]:
    return {
        Kind.CODEX: CodexTransport(settings.lenient),
        Kind.OPENAI: OpenAITransport(settings.lenient),
        Kind.ANTHROPIC: AnthropicTransport(settings.anthropic_version, settings.lenient),
        Kind.CLAUDE: ClaudeTransport(settings.anthropic_version, settings.lenient),
        Kind.GEMINI: GeminiTransport(settings.lenient),
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


def pool_secrets(secrets: Mapping[str, Secret], refresher: TokenRefresher) -> list[str]:
    """Every key, access token, refresh token and proxy password the pool holds, as it is now."""
    tokens = [secret.token for secret in secrets.values()]
    for secret in secrets.values():  # a proxy's password, and its URL that holds it
        tokens += [t for t in (secret.egress.url, secret.egress.password) if t]
    for state in refresher.accounts.values():
        tokens += [t for t in (state.tokens.access_token, state.tokens.refresh_token) if t]
    return tokens


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
