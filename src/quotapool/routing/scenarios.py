"""What kind of request this is, so a profile can send each kind to its own model. Pure.

One scenario per request, the first that applies, in this order:

- `image`: an image in the input (`input_image`, `image_url`, an Anthropic `image` block);
- `web_search`: a web search tool offered (`web_search*` tools, `web_search_options`);
- `long_context`: estimated input tokens (body bytes / 4) above `long_context_tokens`;
- `think`: reasoning effort high (`reasoning.effort`, `reasoning_effort`) or thinking on
  (Anthropic `thinking.type` enabled or adaptive);
- `background`: a small, fast model class asked for (a `mini`, `nano`, `haiku`, `flash`,
  `lite` or `small` model);
- `default`: everything else.

Capabilities come first: a request with an image must reach a model that reads images,
whatever else it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

DEFAULT = "default"
SCENARIOS = ("image", "web_search", "long_context", "think", "background", DEFAULT)
BYTES_PER_TOKEN = 4
"""The input estimate: JSON bytes per token (a safe overestimate for English text and code)."""
_SMALL = re.compile(r"(?:^|[-_.:/])(?:mini|nano|haiku|flash|lite|small)(?:$|[-_.:/0-9])")
# Tuples, not sets: a client's value may be any JSON (a list is not hashable).
_IMAGE_TYPES = ("input_image", "image_url", "image")
_HIGH_EFFORT = ("high", "xhigh", "max")
_THINKING = ("enabled", "adaptive")


def detect(
    payload: Mapping[str, Any], body: bytes, requested: str, long_context_tokens: int
) -> str:
    """The scenario of a request (its parsed `payload`, its `body`, the model asked for).

    The conversation and the tools (most of a large request) are read only when the body's
    bytes name an image or a web search: a substring search costs microseconds, building a
    conversation's items hundreds (the payload builds a field when it is first read)."""
    if b"image" in body:
        items = payload.get("input")
        if items is None:
            items = payload.get("messages")
        if isinstance(items, list) and _has_image(items):
            return "image"
    if (
        b"web_search" in body
        and ("tools" in payload or "web_search_options" in payload)
        and _offers_web_search(payload)
    ):
        return "web_search"
    if len(body) > long_context_tokens * BYTES_PER_TOKEN:
        return "long_context"
    if _thinks(payload):
        return "think"
    return "background" if _small(requested) else DEFAULT


@lru_cache(maxsize=256)
def _small(model: str) -> bool:
    return _SMALL.search(model.lower()) is not None


def _has_image(items: list[Any]) -> bool:
    for item in items:
        if type(item) is not dict or type(content := item.get("content")) is not list:
            continue  # most items of a long conversation: tool calls and their outputs
        for part in content:
            if type(part) is dict and part.get("type") in _IMAGE_TYPES:
                return True
    return False


def _offers_web_search(payload: Mapping[str, Any]) -> bool:
    if payload.get("web_search_options") is not None:
        return True
    tools = payload.get("tools")
    return isinstance(tools, list) and any(
        isinstance(tool, dict)
        and (str(tool.get("type", "")).startswith("web_search") or tool.get("name") == "web_search")
        for tool in tools
    )


def _thinks(payload: Mapping[str, Any]) -> bool:
    reasoning = payload.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") in _HIGH_EFFORT:
        return True
    if payload.get("reasoning_effort") in _HIGH_EFFORT:
        return True
    thinking = payload.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in _THINKING
