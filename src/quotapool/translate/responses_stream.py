"""Responses clients (the Codex CLI, the OpenAI SDK's `responses`) served from Responses events
a translator produced from another API's stream. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from quotapool.upstream.usage import Usage, parse_usage


class ResponsesStreamAdapter:
    """Feeds on Responses events; emits them as the Responses API streams them (numbered), or
    the final response for clients that did not stream."""

    tail = b""

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage: Usage | None = None
        self.response: dict[str, Any] | None = None
        """The final response once it completed."""
        self._sequence = 0

    @property
    def finished(self) -> bool:
        return self.response is not None

    def feed(self, payload: dict[str, Any]) -> bytes:
        kind = str(payload.get("type", ""))
        if kind == "error" and isinstance(error := payload.get("error"), dict):
            payload = {"type": "error", "code": error.get("type"), "message": error.get("message")}
        if isinstance(response := payload.get("response"), dict):
            response = {**response, "model": self.model}
            payload = {**payload, "response": response}
            if kind in ("response.completed", "response.incomplete"):
                self.response = response
                self.usage = parse_usage(response.get("usage"))
        event = {**payload, "sequence_number": self._sequence}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"

    def completion(self) -> dict[str, Any]:
        assert self.response is not None
        return self.response
