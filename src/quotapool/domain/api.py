"""The APIs on both sides of quotapool: the one a client speaks, those an upstream offers."""

from __future__ import annotations

from enum import StrEnum


class Route(StrEnum):
    """The client API a request came in on."""

    RESPONSES = "responses"
    COMPACT = "compact"
    """`/responses/compact`: routed like a response, tool-only fields removed."""
    CHAT = "chat"
    MESSAGES = "messages"
    COUNT_TOKENS = "count_tokens"
    """`/v1/messages/count_tokens`: Anthropic's token count, routed like messages."""
    GEMINI = "gemini"
    """`/v1beta/models/{model}:generateContent` (and `:streamGenerateContent`): the Gemini
    API. Its model and stream flag, which its path carries, are in its payload here
    (`model`, `stream`), taken out again for a Gemini upstream."""
    GEMINI_COUNT_TOKENS = "gemini_count_tokens"
    """`/v1beta/models/{model}:countTokens`: answered with an estimate here."""
    WEBSOCKET = "websocket"
    """The Codex WebSocket transport (its model is known only after the upgrade)."""


class Api(StrEnum):
    """An API an upstream is spoken to in (an OpenAI-compatible credential's `apis = [...]`
    names those it offers)."""

    CODEX = "codex"
    """The ChatGPT backend's Responses API: always streamed, unstored, no output cap or
    sampling controls."""
    RESPONSES = "responses"
    CHAT = "chat"
    MESSAGES = "messages"
    GEMINI = "gemini"
