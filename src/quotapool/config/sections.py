"""The sections of `quotapool.toml` that are not plain settings: credentials, the network,
routing and its profiles (with their warmups)."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from quotapool.domain.credential import Kind, Policy, control_characters
from quotapool.domain.egress import DIRECT, Egress, EgressConfigError, parse_egress
from quotapool.domain.quota import limit_key
from quotapool.problem import Problem


class ConfigError(Problem):
    """The configuration cannot be used; the message says what to fix."""

    exit_code = 2


class CredentialConfig(BaseModel):
    """One `[[credentials]]` entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    name: str = Field(min_length=1)
    base_url: str | None = None
    """Upstream base (OpenAI: `https://api.openai.com/v1`; Anthropic: `https://api.anthropic.com`);
    Codex accounts default to the global `codex_base_url`."""
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    """Name of an environment variable that holds the key (keeps it out of the file)."""
    account_id: str | None = None
    """Codex accounts: the ChatGPT account id sent as `chatgpt-account-id`."""
    models: tuple[str, ...] = ()
    weight: float = Field(default=1.0, gt=0)
    priority: int = 0
    plan: str | None = None
    """Codex accounts: the ChatGPT plan (free, plus, pro…), which sets capacity."""
    policy: Policy = Policy.NORMAL
    model_map: dict[str, str] = {}
    """Requested model → model sent to this credential's upstream."""
    apis: tuple[Literal["chat", "responses"], ...] = ()
    """OpenAI-compatible credentials: the APIs the server offers (default both; vLLM, Ollama
    and OpenRouter have only `["chat"]`). Other client APIs are translated onto them."""
    prices: dict[str, float] = {}
    """Model → USD per million tokens on this credential (overrides routing.pricing)."""
    serve_any_client: bool = False
    """A Claude subscription: also serve clients other than Claude Code (SDK scripts, OpenAI
    clients translated to Messages). Off by default: the provider's terms are about Claude Code."""
    proxy_url: SecretStr | None = None
    """This credential's egress: an HTTP or SOCKS proxy every connection it makes goes through
    (`socks5h://user:password@host:1080`), or "direct"; default: `[network] proxy_url`."""

    @field_validator("proxy_url")
    @classmethod
    def _proxy(cls, value: SecretStr | None) -> SecretStr | None:
        return _checked_proxy(value)

    def egress(self, default: Egress) -> Egress:
        if self.proxy_url is None:
            return default
        return parse_egress(self.proxy_url.get_secret_value())

    @model_validator(mode="after")
    def _check(self) -> CredentialConfig:
        for field_name in ("name", "account_id", "base_url", "plan"):
            value = getattr(self, field_name)
            if value is not None and control_characters(value):
                raise ValueError(
                    f"credential {self.name!r}: {field_name} contains a control character "
                    "(a line break, tab or NUL); remove it"
                )
        if self.api_key is not None and control_characters(self.api_key.get_secret_value()):
            raise ValueError(f"credential {self.name!r}: api_key contains a control character")
        if self.api_key is None and self.api_key_env is None:
            raise ValueError(f"credential {self.name!r}: set api_key or api_key_env")
        if self.apis and self.kind is not Kind.OPENAI:
            raise ValueError(
                f"credential {self.name!r}: apis is for openai credentials (a {self.kind} "
                "credential's upstream offers one API)"
            )
        if self.serve_any_client and self.kind is not Kind.CLAUDE:
            raise ValueError(
                f"credential {self.name!r}: serve_any_client is for claude credentials"
            )
        if self.kind not in (Kind.CODEX, Kind.CLAUDE, Kind.GEMINI) and not self.base_url:
            raise ValueError(f"credential {self.name!r}: {self.kind} credentials need a base_url")
        return self

    def secret(self) -> str:
        """The key itself, read from the file or the named environment variable."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        value = os.environ.get(self.api_key_env or "")
        if not value:
            raise ConfigError(
                f"credential {self.name!r}: environment variable {self.api_key_env} is not set"
            )
        return value


Scenario = Literal["default", "background", "think", "long_context", "web_search", "image"]
PROFILE_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


def _checked_proxy(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        try:
            parse_egress(value.get_secret_value())
        except EgressConfigError as exc:
            raise ValueError(str(exc)) from None
    return value


class NetworkConfig(BaseModel):
    """`[network]`: how quotapool reaches the upstreams."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    proxy_url: SecretStr | None = None
    """The egress of every credential without its own `proxy_url`: an HTTP or SOCKS proxy
    (`http://`, `https://`, `socks4://`, `socks5://`, `socks5h://`, with `user:password@`);
    unset: direct. A credential whose proxy is down fails; it never goes direct instead."""

    @field_validator("proxy_url")
    @classmethod
    def _proxy(cls, value: SecretStr | None) -> SecretStr | None:
        return _checked_proxy(value)

    @property
    def egress(self) -> Egress:
        return DIRECT if self.proxy_url is None else parse_egress(self.proxy_url.get_secret_value())


class TracingConfig(BaseModel):
    """`[tracing]`: OpenTelemetry spans per request, exported with OTLP over HTTP (the
    `quotapool[tracing]` extra)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    """An OTLP/HTTP traces endpoint (a collector's, Jaeger's, Tempo's)."""
    service_name: str = "quotapool"
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """The share of requests traced."""


class WebhookConfig(BaseModel):
    """`[[alerts.webhooks]]`: where alerts are posted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr
    """An http(s) URL (a Slack incoming webhook's holds its secret: it is never logged)."""
    format: Literal["json", "slack"] = "json"
    """"json": the alert as an object (`event`, `alert`, `subject`, `message`, `at`);
    "slack": `{"text": …}`, as Slack's (and Mattermost's, Discord's /slack) incoming webhooks
    take it."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("a webhook URL starts with http:// or https://")
        return value


class AlertsConfig(BaseModel):
    """`[alerts]`: say when something needs the operator, once per episode, and when it is
    over — in the log, and to every webhook."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhooks: tuple[WebhookConfig, ...] = ()
    interval_seconds: float = Field(default=30.0, gt=0)
    """How often the pool is looked at."""
    out_minutes: float = Field(default=15.0, ge=0)
    """An account out (limited, failing) for longer than this is an alert."""
    runs_out_hours: float = Field(default=24.0, ge=0)
    """The pool forecast to run out of weekly credits within this is an alert (0: never)."""
    key_limit_percent: float = Field(default=90.0, gt=0, le=100)
    """A client key that used this share of one of its limits is an alert."""


class WarmupConfig(BaseModel):
    """`[routing.warmup]` / `[profiles.NAME.warmup]`: start the windows of secondaries early."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    credentials: tuple[str, ...] = Field(min_length=1)
    """The allowlist: only these credentials are ever warmed."""
    ttl_seconds: float = Field(default=18000.0, gt=0)
    """At most one warmup per credential in this long (a 5-hour window by default)."""
    timeout_seconds: float = Field(default=15.0, gt=0)
    model: str | None = None
    """The model a warmup asks for (the cheapest each credential serves); default: the model
    of the request that triggered it."""


class FallbackConfig(BaseModel):
    """`[routing.fallback]` / `[profiles.NAME.fallback]`: per model asked for, the models to
    send instead, in order, when no credential can serve it (`"gpt-5.5" = ["gpt-5.4"]`), and
    `return`: when a conversation that fell back asks for its own model again."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    chains: dict[str, tuple[str, ...]] = {}
    return_: Literal["after reset", "at once"] = Field(default="after reset", alias="return")
    """"after reset": once the time its model was announced to come back has passed (its prompt
    cache is on the fallback meanwhile); "at once": with its next request."""

    @model_validator(mode="before")
    @classmethod
    def _from_table(cls, data: Any) -> Any:
        """The TOML table names models beside `return`."""
        if not isinstance(data, dict) or "chains" in data:
            return data
        chains = {k: v for k, v in data.items() if k not in ("return", "return_")}
        return {**{k: v for k, v in data.items() if k not in chains}, "chains": chains}

    @field_validator("chains")
    @classmethod
    def _chains(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for model, chain in value.items():
            if not chain:
                raise ValueError(f"fallback of {model!r} names no model")
            if model in chain or len(set(chain)) < len(chain):
                raise ValueError(f"fallback of {model!r} names a model twice: {list(chain)}")
        return value


class RoutingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = "expiry_weighted"
    max_attempts: int = Field(default=3, ge=1, le=20)
    """Credentials tried for one request before giving up (failover bound)."""
    route_header: bool = True
    """Send `x-quotapool-route: <strategy>; credential=<name>` on every response."""
    seed: int | None = None
    """Seed of the routing RNG (reproducible runs); random when unset."""
    session_affinity: bool = True
    """Keep a conversation on the account that holds its prompt cache while it is healthy."""
    affinity_ttl_seconds: float = Field(default=1800.0, gt=0)
    budget_safe: bool = True
    budget_threshold: float = Field(default=95.0, gt=0, le=100)
    """Prefer credentials below this percent of their 5-hour window while any exist."""
    prefer_earlier_reset: bool = False
    reset_bucket_seconds: float = Field(default=3600.0, gt=0)
    latency_min_samples: int = Field(default=3, ge=1)
    pinned: str | None = None
    """The credential `single` uses."""
    pricing: dict[str, float] = {}
    """Model → USD per million tokens, for least_cost (added to the built-in table)."""
    gated_models: dict[str, str] = {}
    """Model → the additional quota it is served from, by id or name (e.g. "codex_bengalfox"
    or "GPT-5.3-Codex-Spark"; case and punctuation do not matter)."""
    credentials: tuple[str, ...] | None = None
    """The credentials (by name) this profile routes to; default: the whole pool."""
    weights: dict[str, float] = {}
    """Credential name → weight in this profile, over the credential's own."""
    models: dict[Scenario, str] = {}
    """Scenario → model actually sent (`default` applies to every scenario without its own)."""
    long_context_tokens: int = Field(default=60_000, gt=0)
    """Estimated input tokens above which a request is the `long_context` scenario."""
    warmup: WarmupConfig | None = None
    fallback: FallbackConfig = FallbackConfig()
    """What to send when no credential can serve the model asked for."""
    gemini_models: dict[Literal["pro", "flash", "default"], str] = {}
    """Gemini family → the model credentials that are not Gemini keys serve in its place (over
    the defaults: pro gpt-5.5, flash gpt-5.4-mini)."""
    claude_models: dict[Literal["opus", "sonnet", "haiku", "default"], str] = {}
    """Claude family → the model credentials that are not Anthropic's serve in its place (over
    the defaults: opus and sonnet gpt-5.5, haiku gpt-5.4-mini); a credential's `model_map`
    applies after it (`"gpt-5.5" = "qwen3-coder"` on a vLLM key)."""

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if weight <= 0:
                raise ValueError(f"weight of {name!r} must be above 0")
        return value

    @field_validator("gated_models")
    @classmethod
    def _limit_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return {model: limit_key(limit) for model, limit in value.items()}

    @model_validator(mode="after")
    def _check(self) -> RoutingConfig:
        from quotapool.routing.registry import STRATEGIES

        if self.strategy not in STRATEGIES:
            known = ", ".join(sorted(STRATEGIES))
            raise ValueError(f"unknown strategy {self.strategy!r}; choose one of: {known}")
        if self.strategy == "single" and not self.pinned:
            raise ValueError("strategy 'single' needs routing.pinned = <credential name>")
        return self


OWN_PER_PROFILE = ("credentials", "weights", "models", "warmup")
"""Profile settings never taken from `[routing]`."""


class ProfileConfig(BaseModel):
    """`[profiles.NAME]`: a routing profile; what it leaves unset comes from `[routing]`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str | None = None
    credentials: tuple[str, ...] | None = None
    weights: dict[str, float] | None = None
    budget_safe: bool | None = None
    budget_threshold: float | None = None
    prefer_earlier_reset: bool | None = None
    reset_bucket_seconds: float | None = None
    latency_min_samples: int | None = None
    pinned: str | None = None
    models: dict[Scenario, str] | None = None
    long_context_tokens: int | None = None
    warmup: WarmupConfig | None = None
    fallback: FallbackConfig | None = None
    gemini_models: dict[Literal["pro", "flash", "default"], str] | None = None
    claude_models: dict[Literal["opus", "sonnet", "haiku", "default"], str] | None = None

    def over(self, routing: RoutingConfig, *, everything: bool = False) -> RoutingConfig:
        """The profile's settings, validated like `[routing]`. Strategy and modifiers it
        leaves unset are `[routing]`'s; what it routes to (credentials, weights, models,
        warmup) is its own: the whole pool, as asked, nothing warmed, unless it says so
        (`everything`: inherit those too, for `[profiles.default]` over `[routing]`)."""
        inherited = routing.model_dump(exclude=None if everything else set(OWN_PER_PROFILE))
        return RoutingConfig(**{**inherited, **self.model_dump(exclude_none=True)})
