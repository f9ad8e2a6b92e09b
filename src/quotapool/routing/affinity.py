"""Session affinity: which requests belong to one conversation, and which account it stays
on. Pure.

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

from quotapool.jsonlazy import head

HEADER_KEYS = (
    "x-codex-turn-state",
    "thread-id",
    "session-id",
    "session_id",
    "x-codex-session-id",
    "x-claude-code-session-id",
)
PREFIX_CHARS = 512
BRIEF_OUTAGE_SECONDS = 60.0
"""A bound account back within this long keeps its conversations (a stand-in is not kept)."""


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
    items = head(payload, "input")  # (of a conversation, only its first item is built)
    if items is None:
        items = head(payload, "messages")
    if isinstance(items, str):
        return items[:PREFIX_CHARS]
    if isinstance(items, list) and items:
        return orjson.dumps(items[0])[:PREFIX_CHARS].decode(errors="ignore")
    return ""


def rebinds(bound: str | None, served_by: str, bound_back_at: float | None, now: float) -> bool:
    """Whether a conversation moves to the account that served its turn: yes unless that
    account only stood in for its own (`bound`), which comes back by itself within
    BRIEF_OUTAGE_SECONDS (`bound_back_at`; None: it will not) to its warm prompt cache.

    >>> rebinds(None, "b", None, 0.0), rebinds("a", "a", None, 0.0)
    (True, True)
    >>> rebinds("a", "b", 30.0, 0.0), rebinds("a", "b", 90.0, 0.0), rebinds("a", "b", None, 0.0)
    (False, True, True)
    """
    if bound is None or bound == served_by or bound_back_at is None:
        return True
    return bound_back_at - now > BRIEF_OUTAGE_SECONDS
