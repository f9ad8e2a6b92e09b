"""Session affinity keys: which requests belong to one conversation. Pure.

Strongest first: `x-codex-turn-state`, `thread-id`, `session-id` / `session_id` /
`x-codex-session-id` / `x-claude-code-session-id`, the body's `prompt_cache_key`; without any, a
hash of (client identity, instructions prefix, first input item), so even a bare SDK
conversation keeps its cache warm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

HEADER_KEYS = (
    "x-codex-turn-state",
    "thread-id",
    "session-id",
    "session_id",
    "x-codex-session-id",
    "x-claude-code-session-id",
)
PREFIX_CHARS = 512


def affinity_key(headers: Mapping[str, str], payload: Mapping[str, Any], client: str) -> str:
    """The conversation this request belongs to, as a short stable string."""
    for name in HEADER_KEYS:
        if value := headers.get(name):
            return f"{name}:{value}"
    if isinstance(cache_key := payload.get("prompt_cache_key"), str) and cache_key:
        return f"prompt_cache_key:{cache_key}"
    first = _first_input(payload)
    instructions = str(payload.get("instructions") or payload.get("system") or "")[:PREFIX_CHARS]
    digest = hashlib.blake2b(digest_size=12)
    for part in (client, instructions, first):
        digest.update(part.encode())
        digest.update(b"\0")
    return f"derived:{digest.hexdigest()}"


def _first_input(payload: Mapping[str, Any]) -> str:
    items = payload.get("input", payload.get("messages"))
    if isinstance(items, str):
        return items[:PREFIX_CHARS]
    if isinstance(items, list) and items:
        return orjson.dumps(items[0])[:PREFIX_CHARS].decode(errors="ignore")
    return ""
