"""What the request log keeps about one request, filled in as the request goes."""

from __future__ import annotations

from typing import Any

import orjson

from quotapool.routing.base import Decision, Rejection
from quotapool.upstream.usage import Usage

EXPLAINED = 16
"""Candidates and exclusions a logged decision lists at most (the winner and the credentials
a failed attempt tried always among them; `omitted` counts the rest): a decision over a
thousand credentials stays a row of a few kilobytes."""


class Record:
    __slots__ = (
        "attempts",
        "at",
        "client_key",
        "credential",
        "decisions",
        "error",
        "fallback",
        "latency_ms",
        "model",
        "path",
        "profile",
        "request_id",
        "response_id",
        "route",
        "scenario",
        "sent_model",
        "status",
        "stream",
        "trace_id",
        "ttfb_ms",
        "turn_state",
        "usage",
        "warmup",
    )

    def __init__(self, request_id: str, at: float, route: str, path: str) -> None:
        self.request_id = request_id
        self.at = at
        self.route = route
        self.path = path
        self.model: str | None = None
        self.stream = False
        self.credential: str | None = None
        self.status = 0
        self.usage: Usage | None = None
        self.ttfb_ms: float | None = None
        self.latency_ms: float | None = None
        self.attempts = 0
        self.decisions: list[Decision | Rejection] = []
        """Every routing decision of the request, explained when the row is written."""
        self.error: str | None = None
        self.response_id: str | None = None
        """The upstream's response id (its account owns it); not logged."""
        self.turn_state: str | None = None
        self.profile: str | None = None
        self.scenario: str | None = None
        self.sent_model: str | None = None
        """The model the upstream was asked for (after the profile's and credential's maps)."""
        self.fallback: str | None = None
        """The profile's fallback model that served it, when none could serve `model`."""
        self.client_key: str | None = None
        """The name of the client key the request came with."""
        self.warmup = False
        """A background request quotapool sent to start a credential's quota window."""
        self.trace_id: str | None = None
        """Its OpenTelemetry trace (`[tracing]`), as 32 hex digits."""

    def row(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "request_id": self.request_id,
            "at": self.at,
            "route": self.route,
            "path": self.path,
            "model": self.model,
            "sent_model": self.sent_model,
            "fallback": self.fallback,
            "profile": self.profile,
            "scenario": self.scenario,
            "warmup": self.warmup,
            "client_key": self.client_key,
            "credential": self.credential,
            "status": self.status,
            "stream": self.stream,
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "cached_tokens": usage.cached_tokens if usage else None,
            "ttfb_ms": self.ttfb_ms,
            "latency_ms": self.latency_ms,
            "attempts": self.attempts,
            "decision": (
                orjson.dumps([d.explain(EXPLAINED) for d in self.decisions]).decode()
                if self.decisions
                else None
            ),
            "error": self.error,
            "trace_id": self.trace_id,
        }
