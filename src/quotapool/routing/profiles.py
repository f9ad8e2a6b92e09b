"""Routing profiles: each kind of traffic routed its own way over one pool. Pure.

A profile has its own strategy and modifiers, a subset of the pool with its own weights, a
model per scenario, and optionally warmup of secondaries. `[routing]` is the profile "default".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from quotapool.domain.columns import Fixed, Rows
from quotapool.domain.credential import Credential, native
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.request import DEFAULT_PROFILE
from quotapool.routing import index
from quotapool.routing.base import RoutingPolicy, Strategy
from quotapool.routing.scenarios import DEFAULT

PROFILE_HEADER = "x-quotapool-profile"
"""The header a client names its profile by (a `/p/NAME/` path prefix sets it too)."""
FILL_STRATEGIES = frozenset({"fill_first", "sequential"})
"""Strategies that keep secondaries idle: the ones warmup is for."""


CLAUDE_MODELS = {
    "opus": "gpt-5.5",
    "sonnet": "gpt-5.5",
    "haiku": "gpt-5.4-mini",
    "default": "gpt-5.5",
}
"""What Claude model names become on Codex accounts unless `claude_models` says otherwise."""
GEMINI_MODELS = {"pro": "gpt-5.5", "flash": "gpt-5.4-mini", "default": "gpt-5.5"}
"""What Gemini model names become on credentials that are not Gemini keys unless
`gemini_models` says otherwise (flash-lite is a flash)."""


@dataclass(eq=False)
class _View:
    """A profile's view of one version of the pool's credentials."""

    credentials: tuple[Credential, ...]
    """The pool's."""
    mine: tuple[Credential, ...]
    rows: Rows
    """Where `mine` are among the pool's."""
    _fixed: Fixed | None = None

    def fixed(self) -> Fixed:
        if self._fixed is None:
            self._fixed = Fixed.of(self.mine)
        return self._fixed


@dataclass(frozen=True, slots=True)
class Warmup:
    """Start the quota windows of allowlisted secondaries early (see `proxy.warmup`)."""

    credentials: frozenset[str]
    """Names of the credentials that may be warmed; no other ever is."""
    ttl_seconds: float
    timeout_seconds: float
    model: str | None
    """The model asked for; None: the model of the request that triggered it."""


@dataclass(frozen=True, slots=True)
class Fallback:
    """What a profile sends when no credential can serve the model asked for (`[routing.fallback]`):
    per model, the models to try instead, in order."""

    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    at_once: bool = False
    """A conversation that fell back tries the model it asked for again with its next request
    (`return = "at once"`); else it stays on the fallback (where its prompt cache now is)
    until the time the model asked for was announced to come back."""

    def chain(self, model: str, allowed: frozenset[str] = frozenset()) -> tuple[str, ...]:
        """The models to try after `model`, those a client key may not use left out.

        >>> fallback = Fallback({"gpt-5.5": ("gpt-5.4", "claude-sonnet-4-5")})
        >>> fallback.chain("gpt-5.5"), fallback.chain("gpt-5.5", frozenset({"gpt-5.4"}))
        (('gpt-5.4', 'claude-sonnet-4-5'), ('gpt-5.4',))
        """
        chain = self.chains.get(model, ())
        return tuple(m for m in chain if m in allowed) if allowed and chain else chain


@dataclass(frozen=True, eq=False)
class Profile:
    name: str
    strategy: Strategy
    policy: RoutingPolicy
    members: frozenset[str] | None = None
    """Names of the credentials it routes to; None: the whole pool."""
    weights: Mapping[str, float] = field(default_factory=dict)
    """Name → weight in this profile, over the credential's own."""
    models: Mapping[str, str] = field(default_factory=dict)
    """Scenario → model sent (`default` for every scenario without its own)."""
    long_context_tokens: int = 60_000
    warmup: Warmup | None = None
    claude_models: Mapping[str, str] = field(default_factory=lambda: dict(CLAUDE_MODELS))
    """Claude family (opus, sonnet, haiku) → the model a credential that is not Anthropic's
    serves in its place (Claude Code on ChatGPT accounts)."""
    fallback: Fallback = field(default_factory=Fallback)
    gemini_models: Mapping[str, str] = field(default_factory=lambda: dict(GEMINI_MODELS))
    """Gemini family (pro, flash) → the model a credential that is not a Gemini key serves in
    its place (the Gemini CLI on ChatGPT accounts)."""
    _view: list[_View] = field(default_factory=list, repr=False)
    """This profile's view of the pool's last credentials: they change rarely."""

    def stand_in(self, model: str) -> str | None:
        """What a credential of another maker serves in a Claude or Gemini model's place
        (`claude-opus-5-5` → the opus model, `gemini-2.5-flash` → the flash one); None for
        other models."""
        families: tuple[str, ...]
        if model.startswith("claude"):
            families, stand_ins = ("opus", "sonnet", "haiku"), self.claude_models
        elif model.startswith("gemini"):
            families, stand_ins = ("pro", "flash"), self.gemini_models
        else:
            return None
        family = next((f for f in families if f in model), "default")
        return stand_ins.get(family, stand_ins["default"])

    def sent_model(self, credential: Credential, model: str) -> str:
        """The model `credential` is asked for: its own `model_map` of the requested name, else
        of the stand-in (a maker's keys serve its models as they are)."""
        if (mapped := credential.sent_model(model)) != model or native(credential, model):
            return mapped
        return credential.sent_model(self.stand_in(model) or model)

    @property
    def fills(self) -> bool:
        """Its strategy fills one credential at a time (secondaries idle meanwhile)."""
        return self.strategy.name in FILL_STRATEGIES

    def view(self, snapshot: PoolSnapshot) -> PoolSnapshot:
        """The pool as this profile sees it: its credentials only, with its weights (and, for
        a large pool, its rows of the pool's columns: `routing.index`)."""
        if self.members is None and not self.weights:
            return snapshot
        cached = self._view
        if not cached or cached[0].credentials is not snapshot.credentials:
            members, weights = self.members, self.weights
            rows = [
                i
                for i, c in enumerate(snapshot.credentials)
                if members is None or c.name in members
            ]
            mine = tuple(
                replace(c, weight=weights[c.name]) if c.name in weights else c
                for c in (snapshot.credentials[i] for i in rows)
            )
            cached[:] = [_View(snapshot.credentials, mine, np.array(rows, np.intp))]
        view = cached[0]
        columns = None
        if len(view.mine) >= index.INDEX_FROM:  # decided from the pool's columns: its rows
            columns = snapshot.indexed().subset(view.rows, view.fixed())
        return PoolSnapshot(view.mine, snapshot.states, snapshot.sequence, columns)

    def model_for(self, scenario: str, requested: str) -> str:
        """The model sent for a request of `scenario` that asked for `requested`."""
        models = self.models
        if not models:
            return requested
        return models.get(scenario) or models.get(DEFAULT) or requested

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "strategy": self.strategy.name,
            "credentials": sorted(self.members) if self.members is not None else "all",
            "weights": dict(self.weights),
            "models": dict(self.models),
            "long_context_tokens": self.long_context_tokens,
        }
        if self.fallback.chains:
            described["fallback"] = {
                **{model: list(chain) for model, chain in self.fallback.chains.items()},
                "return": "at once" if self.fallback.at_once else "after reset",
            }
        if self.warmup is not None:
            described["warmup"] = {
                "credentials": sorted(self.warmup.credentials),
                "ttl_seconds": self.warmup.ttl_seconds,
                "timeout_seconds": self.warmup.timeout_seconds,
                "model": self.warmup.model,
            }
        return described


@dataclass(frozen=True, slots=True)
class Routing:
    """Every profile, and the models served from additional quotas."""

    profiles: Mapping[str, Profile]
    gated_models: Mapping[str, str] = field(default_factory=dict)
    """Model → `limit_key` of the additional quota that serves it."""

    @property
    def default(self) -> Profile:
        return self.profiles[DEFAULT_PROFILE]

    def unknown(self, name: str) -> str:
        """What to tell a client that asked for a profile that does not exist."""
        known = ", ".join(sorted(self.profiles))
        return (
            f"Unknown routing profile {name!r}; the profiles here are: {known} "
            "(set by the x-quotapool-profile header or a /p/NAME/ path prefix)."
        )
