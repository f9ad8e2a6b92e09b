"""Settings: read once from `quotapool.toml` and `QUOTAPOOL_*` env vars, then passed down."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from quotapool.config.sections import (
    PROFILE_NAME,
    AlertsConfig,
    ConfigError,
    CredentialConfig,
    NetworkConfig,
    ProfileConfig,
    RoutingConfig,
    TracingConfig,
    WarmupConfig,
)
from quotapool.domain.request import DEFAULT_PROFILE

__all__ = [
    "AlertsConfig",
    "ConfigError",
    "CredentialConfig",
    "NetworkConfig",
    "ProfileConfig",
    "RoutingConfig",
    "Settings",
    "TracingConfig",
    "WarmupConfig",
    "load_settings",
    "loopback_url",
    "resolved_config_path",
]

DEFAULT_HOME = Path("~/.quotapool")
CONFIG_FILE_NAME = "quotapool.toml"
DRAIN_REPLICA_SECONDS = 5.0
"""How long a replica keeps serving, not ready, after SIGTERM: long enough for a balancer to
stop sending it connections (set `drain_seconds` to your health checks' interval × the
failures they need)."""


class Settings(BaseSettings):
    """Everything quotapool reads at start; frozen."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="QUOTAPOOL_", env_nested_delimiter="__"
    )

    home: Path = DEFAULT_HOME
    host: str = "127.0.0.1"
    port: int = Field(default=8410, ge=0, le=65535)
    database_url: str | None = None
    """SQLAlchemy URL of the request log; SQLite under `home` by default."""
    redis_url: str | None = None
    """Share the pool with other quotapool processes and machines through this Redis
    (`redis://host:6379/0`): needed for `serve --workers N` and for replicas."""
    codex_base_url: str = "https://chatgpt.com/backend-api"
    auth_base_url: str = "https://auth.openai.com"
    """The ChatGPT OAuth server (token refresh, logins)."""
    claude_api_base_url: str = "https://api.anthropic.com"
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    """Where Gemini keys (`kind = "gemini"`) without a base_url of their own are used."""
    """Where Claude subscriptions are served (the Messages API, their usage and profile)."""
    claude_auth_base_url: str = "https://console.anthropic.com"
    """The Claude OAuth server (token refresh, logins)."""
    claude_authorize_url: str = "https://claude.ai/oauth/authorize"
    """The page a Claude sign-in (`accounts login --kind claude`) starts at."""
    usage_poll_interval: float = Field(default=60.0, ge=0)
    """Seconds between two polls of the same Codex account's usage (0 turns polling off)."""
    accounts_watch_interval: float = Field(default=2.0, gt=0)
    """How often a running server checks the database for account changes from the CLI."""
    codex_models: tuple[str, ...] = ("gpt-5.5", "gpt-5.4", "gpt-5.3-codex", "gpt-5.4-mini")
    """Models listed by `/v1/models` for Codex accounts whose own list is not known yet."""
    codex_models_refresh: float = Field(default=3600.0, ge=0)
    """Seconds between two fetches of a Codex account's model list (`/codex/models`), which
    decides the models routed to it; 0: never fetched (any model goes to a Codex account)."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    """Largest request body, and largest WebSocket message from a client (closed with 1009)."""
    max_header_bytes: int = Field(default=64 * 1024, gt=0)
    """Largest request line + headers (431 past it)."""
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection must send a request's headers within this long (408 otherwise)."""
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    """Longest wait for the next part of a request body (408 otherwise)."""
    max_connections: int = Field(default=512, gt=0)
    """Client connections served at once; more are answered 503 and closed."""
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)
    """Longest silence from an upstream before the request fails, and longest wait for its
    next whole event (an upstream dripping a byte at a time is not silent)."""
    first_event_timeout_seconds: float = Field(default=120.0, gt=0)
    """Longest wait for an upstream's first whole event (before it, the pool fails over)."""
    max_upstream_event_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    """Largest upstream event (or whole JSON answer): past it the pool fails over, or a
    started stream ends with an error event."""
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    shutdown_grace_seconds: int = Field(default=30, ge=0)
    """On SIGTERM, requests in flight get this long to finish; open streams are then ended
    with an error event (every request still gets its log row)."""
    drain_seconds: float | None = Field(default=None, ge=0)
    """On SIGTERM, first go on serving this long with `/ready` answering 503 ("draining"), so
    a load balancer takes the replica out before its listener closes (a connection that
    arrives as it closes is reset). Default: 5 with `redis_url` (replicas), else 0."""
    allow_remote: bool = False
    """Serve non-loopback clients without client keys. Only behind your own access control."""
    response_items_memory_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    """What the conversations kept in memory may take (older turns are read back from the
    database when a continuation needs them)."""
    response_items_ttl: float = Field(default=3600.0, gt=0)
    """How long the conversation behind a response from a Codex account is kept after its
    last turn (to expand `previous_response_id`, which the ChatGPT backend refuses over HTTP)."""
    lenient: bool = False
    """Drop request parameters an upstream cannot honour (named in `x-quotapool-dropped`)
    instead of answering 400."""
    metrics: bool = True
    """Count what `GET /metrics` reports (off: it answers 404 and nothing is counted)."""
    admin_docs: bool = False
    """Serve the admin API's browsable docs at `/quotapool/api/docs` (from this install, no
    CDN); the schema is at `/quotapool/api/openapi.json` either way."""
    metrics_public: bool = False
    """Serve `GET /metrics` without the admin token (behind your own access control)."""
    require_client_keys: bool = False
    """Refuse clients without a key even before the first key is created (`quotapool keys`)."""
    allowed_hosts: tuple[str, ...] = ()
    """Names clients may reach quotapool by, besides loopback names and `host` ("*": any)."""
    allowed_origins: tuple[str, ...] = ()
    """Web origins (e.g. "https://tools.example.com") whose pages may call quotapool."""
    trusted_user_header: str | None = None
    """A header naming the signed-in user (`X-Forwarded-User` from oauth2-proxy, an
    identity-aware proxy's): it opens a dashboard session for that user, honoured only from
    `trusted_proxies`; the name is in the audit log."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (`10.0.0.5`, `10.0.0.0/24`) of the proxy that sets
    `trusted_user_header`; from anywhere else the header is ignored."""
    request_log: bool = True
    request_log_write_ahead: bool = True
    """Append each request's row to the journal as it ends (one write per request), so a kill
    -9 loses no row; off, it loses the rows of the last 250 ms."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    anthropic_version: str = "2023-06-01"
    routing: RoutingConfig = RoutingConfig()
    network: NetworkConfig = NetworkConfig()
    alerts: AlertsConfig = AlertsConfig()
    tracing: TracingConfig = TracingConfig()
    profiles: dict[str, ProfileConfig] = {}
    """Named routing profiles (`[profiles.NAME]`); `[routing]` is the profile "default"."""
    credentials: tuple[CredentialConfig, ...] = ()

    @model_validator(mode="after")
    def _trusted(self) -> Settings:
        if self.trusted_user_header and not self.trusted_proxies:
            raise ValueError(
                "trusted_user_header needs trusted_proxies: the addresses of the proxy that "
                "sets it (from anywhere else anyone could send it)"
            )
        for network in self.trusted_proxies:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {network!r} is not an address or network"
                ) from None
        return self

    @model_validator(mode="after")
    def _profiles(self) -> Settings:
        for name, profile in self.profiles.items():
            if not re.match(PROFILE_NAME, name):
                raise ValueError(
                    f"profile name {name!r}: use letters, digits, '.', '_' or '-' (it goes in "
                    "the x-quotapool-profile header and the /p/NAME/ path)"
                )
            try:
                profile.over(self.routing)
            except ValidationError as exc:
                problems = "; ".join(
                    ".".join(str(p) for p in e["loc"])
                    + ": " * bool(e["loc"])
                    + e["msg"].removeprefix("Value error, ")
                    for e in exc.errors()
                )
                raise ValueError(f"profile {name!r}: {problems}") from None
        return self

    def routing_profiles(self) -> dict[str, RoutingConfig]:
        """Every profile's effective settings: "default" is `[routing]` (with
        `[profiles.default]` over it, if given)."""
        default = self.routing
        if (over := self.profiles.get(DEFAULT_PROFILE)) is not None:
            default = over.over(default, everything=True)
        merged = {name: p.over(self.routing) for name, p in self.profiles.items()}
        return {**merged, DEFAULT_PROFILE: default}

    def with_strategies(self, chosen: Mapping[str, str]) -> Settings:
        """These settings with the strategy of each profile in `chosen` replaced, as if
        quotapool.toml said so: the default's is `[routing]`'s (followed by the profiles that
        inherit it). Unknown profiles are ignored."""
        routing = self.routing
        profiles = dict(self.profiles)
        for name, strategy in chosen.items():
            if name == DEFAULT_PROFILE:
                routing = routing.model_copy(update={"strategy": strategy})
            if name in profiles:
                profiles[name] = profiles[name].model_copy(update={"strategy": strategy})
        return self.model_copy(update={"routing": routing, "profiles": profiles})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables override the file, which is passed in as init values.
        return env_settings, init_settings

    @classmethod
    def exactly(cls, **values: Any) -> Settings:
        """These values and the defaults, whatever QUOTAPOOL_* variables are set (the demo must
        not write into the home or database they name)."""
        return cls(_env_prefix="QUOTAPOOL_EXACTLY_NO_ENVIRONMENT_", **values)

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser()

    @property
    def resolved_drain_seconds(self) -> float:
        if self.drain_seconds is not None:
            return self.drain_seconds
        return DRAIN_REPLICA_SECONDS if self.redis_url else 0.0

    @property
    def resolved_database_url(self) -> str:
        """`postgres://` and `postgresql://` (as providers print them) mean psycopg 3, the
        driver of the `postgres` extra."""
        url = self.database_url or f"sqlite:///{self.resolved_home / 'quotapool.db'}"
        scheme, sep, rest = url.partition("://")
        return f"postgresql+psycopg://{rest}" if sep and scheme in _PLAIN_POSTGRES else url


_PLAIN_POSTGRES = frozenset({"postgres", "postgresql"})


def loopback_url(host: str, port: int) -> str:
    """How a client on this machine reaches a server listening on `host`:`port` (an
    any-address listener by loopback)."""
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def resolved_config_path(config_file: Path | None, home: Path | None = None) -> Path:
    """The file read: the one given, else `quotapool.toml` in the home."""
    home = Path(os.environ.get("QUOTAPOOL_HOME", home or DEFAULT_HOME)).expanduser()
    return config_file or home / CONFIG_FILE_NAME


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (explicit, or `quotapool.toml` in the home), apply env and overrides."""
    path = resolved_config_path(config_file, overrides.get("home"))
    values: dict[str, Any] = {}
    if config_file is not None and not config_file.exists():
        raise ConfigError(f"config file {config_file} does not exist")
    if path.exists():
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = [_problem(e, values) for e in exc.errors()]
        source = "" if all("(environment variable)" in p for p in problems) else f" ({path})"
        listed = "".join(f"\n  - {problem}" for problem in problems)
        raise ConfigError(f"invalid configuration{source}:{listed}") from None


def _problem(error: Any, values: Mapping[str, Any]) -> str:
    """One validation error as a person would say it: credentials by name, the closest known
    setting for an unknown one, and the environment variable when one set the value."""
    loc = tuple(error["loc"])
    where = _where(loc, values)
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
        return f"unknown setting {where}{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if (variable := _env_variable(loc)) is not None:
        return f"{variable} (environment variable): {message}"
    return f"{where}: {message}"


def _where(loc: tuple[Any, ...], values: Mapping[str, Any]) -> str:
    """`credentials.1.weight` → `weight of credential 'work'`; `routing.stratgy` →
    `'stratgy' in [routing]`."""
    if not loc:
        return "the configuration"
    if loc[0] == "credentials" and len(loc) > 1 and isinstance(loc[1], int):
        entries = values.get("credentials") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else {}
        name = entry.get("name") if isinstance(entry, dict) else None
        who = f"credential {name!r}" if name else f"credential #{loc[1] + 1}"
        return f"{'.'.join(map(str, loc[2:]))!r} of {who}" if len(loc) > 2 else who
    if len(loc) == 1:
        return repr(loc[0])
    table = ".".join(map(str, loc[:-1]))
    return f"{loc[-1]!r} in [{table}]"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The setting names the table at `loc` knows."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int) or part not in model.model_fields:
            continue  # a list index or a profile name: the model is the same
        inner = _model_in(model.model_fields[part].annotation)
        if inner is None:
            break
        model = inner
    return sorted(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _env_variable(loc: tuple[Any, ...]) -> str | None:
    """The QUOTAPOOL_… variable that set the value at `loc`, if one did."""
    names = [str(p).upper() for p in loc if not isinstance(p, int)]
    for depth in range(len(names), 0, -1):
        variable = "QUOTAPOOL_" + "__".join(names[:depth])
        if variable in os.environ:
            return variable
    return None
