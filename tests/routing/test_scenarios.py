"""Scenario detection, one rule per row, in every client dialect."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

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


@pytest.mark.parametrize(("payload", "scenario"), CASES)
def test_detect(payload: dict[str, Any], scenario: str) -> None:
    body = orjson.dumps(payload)
    assert detect(payload, len(body), payload["model"], long_context_tokens=100) == scenario
