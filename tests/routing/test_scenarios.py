"""Scenario detection, one rule per row, in every client dialect."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from quotapool.jsonlazy import LAZY_FROM_BYTES, LazyObject, loads_object
from quotapool.routing.scenarios import detect

IMAGE_PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
CASES: list[tuple[dict[str, Any], str]] = [
    ({"model": "gpt-5.5", "input": "hi"}, "default"),
    ({"model": "gpt-5.4-mini", "input": "hi"}, "background"),
    ({"model": "claude-haiku-4-5", "messages": []}, "background"),
    ({"model": "gemini-2.5-flash", "messages": []}, "background"),
    ({"model": "gpt-5.5-minimal-preview", "input": "hi"}, "default"),  # "minimal" is not "mini"
    ({"model": "gpt-5.5", "input": "x", "reasoning": {"effort": "high"}}, "think"),
    ({"model": "gpt-5.5", "input": "x", "reasoning": {"effort": "low"}}, "default"),
    ({"model": "gpt-5.5", "messages": [], "reasoning_effort": "xhigh"}, "think"),
    ({"model": "claude-opus-4", "messages": [], "thinking": {"type": "adaptive"}}, "think"),
    ({"model": "claude-opus-4", "messages": [], "thinking": {"type": "disabled"}}, "default"),
    ({"model": "gpt-5.5", "input": "q", "tools": [{"type": "web_search_preview"}]}, "web_search"),
    ({"model": "gpt-5.5", "messages": [], "web_search_options": {}}, "web_search"),
    (
        {"model": "claude-x", "messages": [], "tools": [{"type": "web_search_20250305"}]},
        "web_search",
    ),
    ({"model": "gpt-5.5", "messages": [{"role": "user", "content": [IMAGE_PART]}]}, "image"),
    (
        {
            "model": "claude-haiku-4-5",
            "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}],
            "thinking": {"type": "enabled"},
        },
        "image",  # capabilities first
    ),
    ({"model": "gpt-5.5", "input": "an image of a cat, described in words"}, "default"),
    ({"model": "gpt-5.4-mini", "input": "y" * 500}, "long_context"),
    # Any JSON where a string is expected is simply not a match.
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": []}]}]}, "default"),
    ({"model": "m", "input": "x", "reasoning": {"effort": {"a": 1}}}, "default"),
    ({"model": "m", "messages": [], "thinking": {"type": ["enabled"]}}, "default"),
    ({"model": "m", "messages": [], "reasoning_effort": [1]}, "default"),
]


@pytest.mark.parametrize("lazy", [False, True], ids=["dict", "lazy"])
@pytest.mark.parametrize(("payload", "scenario"), CASES)
def test_detect(payload: dict[str, Any], scenario: str, lazy: bool) -> None:
    """As a dict and as the proxy parses a body (its fields built as they are read)."""
    body = orjson.dumps(payload) + (b" " * LAZY_FROM_BYTES if lazy else b"")
    parsed = loads_object(body) if lazy else payload
    assert isinstance(parsed, LazyObject) == lazy
    long_context = 100 + (LAZY_FROM_BYTES // 4 if lazy else 0)  # (the padding is not context)
    assert detect(parsed, body, payload["model"], long_context_tokens=long_context) == scenario


def test_a_long_conversation_without_an_image_or_a_web_search_is_not_built() -> None:
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}]
    tools = [{"type": "function", "name": "shell"}]
    body = orjson.dumps({"model": "gpt-5.5", "input": items * 500, "tools": tools})
    parsed = loads_object(body)
    assert detect(parsed, body, "gpt-5.5", long_context_tokens=100_000) == "default"
    assert isinstance(parsed, LazyObject) and parsed.built == set()  # neither input nor tools
