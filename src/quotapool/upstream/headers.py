"""Which client headers each upstream gets: an allowlist per upstream kind (a denylist would
forward whatever a client adds: its own `api-key`, `OpenAI-Organization`, cookies…). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from quotapool.domain.credential import Kind

_COMMON = frozenset({"accept", "user-agent", "x-client-request-id"})
_EXACT: dict[Kind, frozenset[str]] = {
    Kind.CODEX: _COMMON
    | {
        "originator",
        "version",
        "openai-beta",
        "session-id",
        "session_id",
        "thread-id",
        "conversation_id",
    },
    Kind.OPENAI: _COMMON | {"openai-beta", "idempotency-key"},
    Kind.ANTHROPIC: _COMMON | {"x-app"},
    Kind.CLAUDE: _COMMON | {"x-app"},
    Kind.GEMINI: _COMMON | {"x-goog-api-client"},
}
_PREFIXES: dict[Kind, tuple[str, ...]] = {
    Kind.CODEX: ("x-codex-", "x-openai-"),
    Kind.OPENAI: ("x-stainless-",),
    Kind.ANTHROPIC: ("anthropic-", "x-stainless-"),
    Kind.CLAUDE: ("anthropic-", "x-stainless-", "x-claude-code-"),
    Kind.GEMINI: (),
}


def forwarded(headers: Mapping[str, str], kind: Kind) -> dict[str, str]:
    """The client headers (lower-case names) that `kind`'s upstream is sent."""
    exact, prefixes = _EXACT[kind], _PREFIXES[kind]
    return {k: v for k, v in headers.items() if k in exact or k.startswith(prefixes)}
