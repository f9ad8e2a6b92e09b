"""The data plane's paths: what each serves, in which API's dialect."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from quotapool.domain.request import Route
from quotapool.proxy.asgi import Scope
from quotapool.proxy.errors import Dialect

OPEN_PATHS = frozenset({"/health", "/ready"})
"""Served without a client key, to any address (probes of load balancers and orchestrators,
which come from other hosts)."""
READY = "ready"
"""`/ready`'s status when it answers 200; any other status says why not (503)."""
POOL_PATH = "/quotapool/pool"
MODELS_PATH = "/v1/models"
GEMINI_MODELS_PATH = "/v1beta/models"
USAGE_PATHS = frozenset({"/backend-api/wham/usage", "/api/codex/usage"})
"""Where the Codex CLI reads its account's limits: answered with the pool's."""
ADMIN_PREFIX = "/quotapool"
"""Where the admin API and the dashboard (`quotapool.admin`) are mounted: every path under it
that is not the data plane's own (`/quotapool/pool`)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    methods: tuple[str, ...]
    dialect: Dialect
    route: Route | None = None
    """Set for proxied endpoints; None for the proxy's own (models, health)."""


ENDPOINTS: dict[str, Endpoint] = {
    "/v1/responses": Endpoint(("POST",), Dialect.OPENAI, Route.RESPONSES),
    "/backend-api/codex/responses": Endpoint(("POST",), Dialect.CODEX, Route.RESPONSES),
    "/v1/responses/compact": Endpoint(("POST",), Dialect.OPENAI, Route.COMPACT),
    "/backend-api/codex/responses/compact": Endpoint(("POST",), Dialect.CODEX, Route.COMPACT),
    "/v1/chat/completions": Endpoint(("POST",), Dialect.OPENAI, Route.CHAT),
    "/v1/messages": Endpoint(("POST",), Dialect.ANTHROPIC, Route.MESSAGES),
    "/v1/messages/count_tokens": Endpoint(("POST",), Dialect.ANTHROPIC, Route.COUNT_TOKENS),
    MODELS_PATH: Endpoint(("GET",), Dialect.OPENAI),
    GEMINI_MODELS_PATH: Endpoint(("GET",), Dialect.GEMINI),
    "/backend-api/codex/models": Endpoint(("GET",), Dialect.CODEX),
    "/health": Endpoint(("GET",), Dialect.OPENAI),
    "/ready": Endpoint(("GET",), Dialect.OPENAI),
    POOL_PATH: Endpoint(("GET",), Dialect.OPENAI),
    "/backend-api/wham/usage": Endpoint(("GET",), Dialect.CODEX),
    "/api/codex/usage": Endpoint(("GET",), Dialect.CODEX),
    "/metrics": Endpoint(("GET",), Dialect.OPENAI),
}


GEMINI_VERBS: dict[str, tuple[Route, bool]] = {
    "generateContent": (Route.GEMINI, False),
    "streamGenerateContent": (Route.GEMINI, True),
    "countTokens": (Route.GEMINI_COUNT_TOKENS, False),
}
"""The Gemini API's methods on a model: the route and whether it streams."""
GEMINI_ENDPOINTS = {
    route: Endpoint(("POST",), Dialect.GEMINI, route)
    for route in (Route.GEMINI, Route.GEMINI_COUNT_TOKENS)
}
GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")


@dataclass(frozen=True, slots=True)
class GeminiCall:
    """`POST /v1beta/models/{model}:{method}`: the model and stream flag its path says."""

    endpoint: Endpoint
    model: str
    stream: bool


def gemini_call(path: str) -> GeminiCall | None:
    """The Gemini API method a path names, if it names one.

    >>> gemini_call("/v1beta/models/gemini-2.5-pro:streamGenerateContent").stream
    True
    >>> gemini_call("/v1/models/gpt-5.5") is None
    True
    """
    prefix = next((p for p in GEMINI_PREFIXES if path.startswith(p)), None)
    if prefix is None:
        return None
    model, _, verb = unquote(path[len(prefix) :]).rpartition(":")
    found = GEMINI_VERBS.get(verb)
    if found is None or not model or "/" in model:
        return None
    route, stream = found
    return GeminiCall(GEMINI_ENDPOINTS[route], model.removeprefix("models/"), stream)


def wants_websocket(scope: Scope) -> bool:
    return any(
        name == b"upgrade" and value.lower() == b"websocket" for name, value in scope["headers"]
    )


def dialect_for(path: str) -> Dialect:
    if path.startswith("/v1/messages"):
        return Dialect.ANTHROPIC
    if path.startswith("/v1beta/"):
        return Dialect.GEMINI
    return Dialect.CODEX if path.startswith("/backend-api") else Dialect.OPENAI
