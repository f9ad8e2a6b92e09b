"""`count_tokens` without an Anthropic key: an estimate made here, with no network. Pure.

About four characters a token for text (system, messages, tool definitions), a few tokens per
message for its framing, and ~1,600 per image (a large image's cost). Clients use the count to
decide when to compact or split, so it is rounded up, never down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_IMAGE = 1600


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    chars = len(_text(body.get("system")))
    images = 0
    messages = body.get("messages")
    if not isinstance(messages, list):
        messages = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        chars += len(_text(content))
        if isinstance(content, list):
            images += sum(1 for b in content if isinstance(b, dict) and b.get("type") == "image")
    if tools := body.get("tools"):
        chars += len(orjson.dumps(tools))
    framing = TOKENS_PER_MESSAGE * len(messages)
    return math.ceil(chars / CHARS_PER_TOKEN) + framing + TOKENS_PER_IMAGE * images


def _text(content: Any) -> str:
    """The words in a system prompt or message content (strings, text and tool blocks)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            parts.append(str(block.get("name", "")) + orjson.dumps(block.get("input")).decode())
        elif block.get("type") == "tool_result":
            parts.append(_text(block.get("content")))
    return "".join(parts)
