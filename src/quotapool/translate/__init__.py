"""Translators between a client's API and the upstream's, one module per pair. Pure: parsed
bodies in, parsed bodies out; upstream events in, client stream bytes out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from quotapool.upstream.usage import Usage


class TranslationError(ValueError):
    """The request uses something the upstream API cannot express; `param` names it."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


CODEX_ACCOUNTS = "Codex (ChatGPT) accounts"
"""How refusals name what a Codex credential is."""
LENIENT_HINT = (
    "leave it out, send it where an upstream can honour it, or set lenient = true to have such "
    "parameters dropped (named in the x-quotapool-dropped response header)"
)


def unsupported(body: Mapping[str, Any], refused: Mapping[str, str]) -> list[str]:
    """The parameters of `body` in `refused` (name → what it does) that are set to something
    other than their neutral value (absent, null, false, `n: 1`)."""
    return [
        name
        for name in refused
        if (value := body.get(name)) is not None
        and value is not False
        and not (name == "n" and value == 1)
    ]


def refuse(body: Mapping[str, Any], refused: Mapping[str, str], what: str) -> None:
    """A TranslationError (a 400 naming it) for the first parameter `what` cannot honour."""
    if found := unsupported(body, refused):
        name = found[0]
        raise TranslationError(
            f"{name} ({refused[name]}) is not supported by {what}; {LENIENT_HINT}", name
        )


CUSTOM_INPUT = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "the tool's whole input"}},
    "required": ["input"],
}
"""The arguments of a custom (freeform) tool, such as the Codex CLI's `apply_patch`, where
an upstream has functions only."""


def as_function(tool: Mapping[str, Any]) -> tuple[str, str, Any] | None:
    """A Responses tool as a function: its name, description and arguments' JSON schema (a
    custom tool takes one string, `input`, its grammar told in the description); None for a
    hosted tool (a web search…)."""
    kind, name = tool.get("type"), str(tool.get("name"))
    description = str(tool.get("description") or "")
    if kind == "function":
        return name, description, tool.get("parameters") or {"type": "object", "properties": {}}
    if kind != "custom":
        return None
    if grammar := (tool.get("format") or {}).get("definition"):
        description += f"\n\nThe input follows this grammar:\n{grammar}"
    return name, description, CUSTOM_INPUT


def call_arguments(arguments: Any, param: str) -> Any:
    """A function call's JSON arguments as an object (`{"value": …}` for any other JSON)."""
    try:
        parsed = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        raise TranslationError(
            "function call arguments must be JSON", f"{param}.arguments"
        ) from None
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def without(body: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in names} if names else body


class StreamAdapter(Protocol):
    """Feeds on the upstream's events; gives the client's stream, or its one answer."""

    usage: Usage | None

    @property
    def finished(self) -> bool:
        """The upstream said the answer is complete."""
        ...

    @property
    def tail(self) -> bytes:
        """What the client's stream ends with after the last event."""
        ...

    def feed(self, payload: dict[str, Any]) -> bytes:
        """One upstream event in; the client stream bytes it becomes (may be empty)."""
        ...

    def completion(self) -> dict[str, Any]:
        """The whole answer as one object, for clients that did not stream."""
        ...
