"""Token usage, read from whichever API shape carried it. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def parse_usage(usage: Any) -> Usage | None:
    """Responses (`input_tokens`), chat (`prompt_tokens`) or Anthropic (`cache_read_…`) usage."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(
        input_tokens=_int(usage.get("input_tokens", usage.get("prompt_tokens"))),
        output_tokens=_int(usage.get("output_tokens", usage.get("completion_tokens"))),
        cached_tokens=cached or _int(usage.get("cache_read_input_tokens")),
    )


def usage_in_event(payload: Any) -> Usage | None:
    """Usage carried by one streamed event of any of the three APIs, if it carries one."""
    if not isinstance(payload, dict):
        return None
    if isinstance(response := payload.get("response"), dict):  # response.completed
        return parse_usage(response.get("usage"))
    if isinstance(message := payload.get("message"), dict):  # anthropic message_start
        return parse_usage(message.get("usage"))
    if "usageMetadata" in payload:
        return gemini_usage(payload["usageMetadata"])
    return parse_usage(payload.get("usage"))


def gemini_usage(metadata: Any) -> Usage | None:
    """The Gemini API's `usageMetadata` (its thinking counts as output).

    >>> gemini_usage({"promptTokenCount": 9, "candidatesTokenCount": 3, "thoughtsTokenCount": 4,
    ...               "cachedContentTokenCount": 5})
    Usage(input_tokens=9, output_tokens=7, cached_tokens=5)
    """
    if not isinstance(metadata, dict):
        return None
    output = _int(metadata.get("candidatesTokenCount")) + _int(metadata.get("thoughtsTokenCount"))
    return Usage(
        _int(metadata.get("promptTokenCount")),
        output,
        _int(metadata.get("cachedContentTokenCount")),
    )


def merge(earlier: Usage | None, later: Usage | None) -> Usage | None:
    """Anthropic reports input in message_start and output in message_delta: keep both."""
    if earlier is None or later is None:
        return later or earlier
    return Usage(
        later.input_tokens or earlier.input_tokens,
        later.output_tokens or earlier.output_tokens,
        later.cached_tokens or earlier.cached_tokens,
    )
