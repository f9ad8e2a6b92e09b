"""Translators between a client's API and the upstream's, one module per pair. Pure: parsed
bodies in, parsed bodies out; upstream events in, client stream bytes out."""

from __future__ import annotations

from typing import Any, Protocol

from quotapool.upstream.usage import Usage


class TranslationError(ValueError):
    """The request uses something the upstream API cannot express; `param` names it."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


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
