"""What a credential is: its identity and what it can serve. Secrets live elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from quotapool.domain.api import Api, Route


def control_characters(value: str) -> bool:
    """True if `value` holds a control character (CR, LF, NUL…): such a name or id would break
    the headers it is sent in, the log lines it is written to, or split one into two."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value)


class Kind(StrEnum):
    """The upstream a credential talks to."""

    CODEX = "codex"
    """A ChatGPT account on the Codex backend (access token + account id)."""
    OPENAI = "openai"
    """An OpenAI-compatible API key."""
    ANTHROPIC = "anthropic"
    """An Anthropic API key."""
    CLAUDE = "claude"
    """A Claude Pro/Max subscription (an OAuth token): serves Claude Code's own requests."""
    GEMINI = "gemini"
    """A Gemini API key (Google AI Studio)."""


SUBSCRIPTIONS = frozenset({Kind.CODEX, Kind.CLAUDE})
"""Credentials with 5-hour and weekly windows (ChatGPT and Claude plans)."""
CLAUDE_KINDS = frozenset({Kind.ANTHROPIC, Kind.CLAUDE})
"""Credentials whose upstream is Anthropic's: they serve Claude models themselves."""
FAMILIES: dict[Kind, str] = {Kind.ANTHROPIC: "claude", Kind.CLAUDE: "claude", Kind.GEMINI: "gemini"}
"""The models a provider's own credentials serve themselves (by name prefix); others serve a
stand-in for them (a profile's `claude_models`, `gemini_models`)."""


def native(credential: Credential, model: str) -> bool:
    """`model` is of the family its provider makes (a Claude model on an Anthropic key)."""
    family = FAMILIES.get(credential.kind)
    return family is not None and model.startswith(family)


class Policy(StrEnum):
    """How eagerly a credential is spent, within its priority tier."""

    BURN_FIRST = "burn_first"
    NORMAL = "normal"
    PRESERVE = "preserve"


POLICY_RANK = {Policy.BURN_FIRST: 0, Policy.NORMAL: 1, Policy.PRESERVE: 2}

PLAN_CAPACITY: dict[str, float] = {
    "free": 1_134,
    "plus": 7_560,
    "team": 7_560,
    "business": 7_560,
    "edu": 7_560,
    "prolite": 37_800,
    "pro": 50_400,
    "enterprise": 50_400,
    "claude_pro": 7_560,
    "claude_max_5x": 37_800,
    "claude_max_20x": 151_200,
}
"""Weekly credits by ChatGPT plan; what capacity_weighted multiplies by. Claude plans are
sized against them by price (Pro as Plus; Max 5× and 20× as five and twenty Pros): they share a
scale only to weigh accounts against accounts of the same kind."""
DEFAULT_CAPACITY = PLAN_CAPACITY["plus"]

DEFAULT_APIS: dict[Kind, frozenset[Api]] = {
    Kind.CODEX: frozenset({Api.RESPONSES}),
    Kind.OPENAI: frozenset({Api.CHAT, Api.RESPONSES}),
    Kind.ANTHROPIC: frozenset({Api.MESSAGES}),
    Kind.CLAUDE: frozenset({Api.MESSAGES}),
    Kind.GEMINI: frozenset({Api.GEMINI}),
}
"""What each kind of upstream offers unless the credential says (`apis`)."""
_TRANSLATED = frozenset({Route.RESPONSES, Route.CHAT, Route.MESSAGES, Route.GEMINI})
"""Client APIs any upstream API can serve, translated where the two differ."""


@dataclass(frozen=True, slots=True, eq=False)
class Credential:
    """A credential as routing sees it: no secret, so it can be logged and explained."""

    id: str
    """Stable identifier, unique in the pool."""
    name: str
    """Human name shown in logs, headers and the dashboard."""
    kind: Kind
    base_url: str
    """Where its upstream lives (for Codex accounts, the backend-api base)."""
    models: frozenset[str] = frozenset()
    """Models it serves; empty means any model."""
    weight: float = 1.0
    priority: int = 0
    """Higher tiers are used first; lower tiers only when no higher one is eligible."""
    plan: str | None = None
    """ChatGPT plan (free, plus, pro…) of a Codex account; decides its capacity."""
    policy: Policy = Policy.NORMAL
    model_map: tuple[tuple[str, str], ...] = ()
    """Requested model → model actually sent upstream (e.g. a cheaper equivalent)."""
    prices: tuple[tuple[str, float], ...] = ()
    """Model → USD per million tokens on this credential, overriding the pricing table."""
    account_id: str | None = None
    """The ChatGPT account id of a Codex account (not a secret: it names the account)."""
    apis: frozenset[Api] = frozenset()
    """The APIs its upstream offers; empty: its kind's (`DEFAULT_APIS`)."""
    serve_any_client: bool = False
    """A Claude subscription: serve any client (SDK scripts, translated OpenAI clients), not
    only Claude Code. The provider's terms may not allow it; it is the operator's call."""
    egress: str = "direct"
    """How its connections leave: "direct", or its proxy's scheme, host and port (the proxy URL
    itself, which may hold a password, is in its `Secret`)."""
    capacity: float = field(init=False)
    """Relative size of the credential: plan credits × weight."""
    routes: frozenset[Route] = field(init=False)
    """The client APIs it serves (translated where its upstream speaks another)."""
    any_model_routes: frozenset[Route] = field(init=False)
    """Those on which it serves any model it lists (or any at all); on the others an
    Anthropic key that lists none serves only Claude models (a chat request for `gpt-5` is
    not for it)."""

    def __post_init__(self) -> None:
        capacity = PLAN_CAPACITY.get(self.plan or "", DEFAULT_CAPACITY) * self.weight
        object.__setattr__(self, "capacity", capacity)
        apis = self.apis or DEFAULT_APIS[self.kind]
        object.__setattr__(self, "apis", apis)
        routes = set(_TRANSLATED)
        if self.kind is Kind.CLAUDE and not self.serve_any_client:
            routes = {Route.MESSAGES}
        if self.kind is Kind.CODEX:
            routes |= {Route.COMPACT, Route.WEBSOCKET}
        elif Api.RESPONSES in apis:
            routes.add(Route.COMPACT)
        if Api.MESSAGES in apis:
            routes.add(Route.COUNT_TOKENS)
        object.__setattr__(self, "routes", frozenset(routes))
        any_model = routes
        if self.kind in CLAUDE_KINDS and not self.models:
            any_model = {Route.MESSAGES, Route.COUNT_TOKENS}
        elif self.kind is Kind.GEMINI and not self.models:
            any_model = {Route.GEMINI}
        object.__setattr__(self, "any_model_routes", frozenset(any_model))

    def upstream_api(self, route: Route) -> Api:
        """The API of its upstream a request on `route` goes to: the client's own when the
        upstream offers it, else Responses (which every translation goes through), else chat."""
        if route in (Route.COUNT_TOKENS, Route.MESSAGES) and Api.MESSAGES in self.apis:
            return Api.MESSAGES
        if route is Route.CHAT and Api.CHAT in self.apis:
            return Api.CHAT
        if Api.GEMINI in self.apis and (route is Route.GEMINI or self.apis == {Api.GEMINI}):
            return Api.GEMINI
        if Api.RESPONSES in self.apis:
            return Api.RESPONSES
        return Api.CHAT if Api.CHAT in self.apis else Api.MESSAGES

    @property
    def stable_id(self) -> str:
        """What deterministic orders break ties by: the ChatGPT account id of a Codex
        account (the same whichever machine imported it), else the name."""
        return self.account_id or self.name

    def serves(self, model: str) -> bool:
        """True for a model it lists; any model when it lists none; "" (not known yet) too."""
        return not self.models or not model or model in self.models

    def sent_model(self, model: str) -> str:
        for requested, sent in self.model_map:
            if requested == model:
                return sent
        return model

    def price(self, model: str) -> float | None:
        for priced, usd in self.prices:
            if priced == model:
                return usd
        return None
