"""Learning from upstream events in passing, for HTTP streams and WebSocket frames alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from quotapool.clock import Clock
from quotapool.domain.outcome import Limited, Observed
from quotapool.proxy.record import Record
from quotapool.store.base import PoolStore
from quotapool.upstream.signals import event_failure, parse_rate_limits_event
from quotapool.upstream.sse import event_data
from quotapool.upstream.usage import merge, usage_in_event

_ERROR_TYPE = b'"type":"error"'
_ITEM_DONE = b'"response.output_item.done"'


def _worth_parsing(event: bytes, error: bytes) -> bool:
    """Whether an event may carry something to learn; `error` is how an error event shows in
    this form (`event: error` in a raw SSE event, `"type":"error"` in a WebSocket frame's JSON).
    Five substring checks, no parsing: this runs for every event of every stream."""
    return (
        b'"usage' in event  # (`"usage"`, and Gemini's `"usageMetadata"`)
        or b"codex.rate_limits" in event
        or b'"response.created"' in event
        or error in event
        or b'"response.failed"' in event
    )


class EventLearner:
    """What one credential's events tell: the response id (kept on the record, and owned at
    once if `own` is given), token usage (the record), headroom announced by
    `codex.rate_limits` (applied to the pool), and a limit announced by an error event (kept in
    `limited`: an HTTP request settles with it, a WebSocket session applies it at once).

    Only events carrying one of those markers are parsed (substring checks: this runs for every
    event of every stream); `learn` returns what it parsed, so a relay that needs the payload
    does not parse it twice."""

    __slots__ = ("clock", "credential_id", "limited", "output", "own", "pool", "record")

    def __init__(
        self,
        record: Record,
        credential_id: str,
        pool: PoolStore,
        clock: Clock,
        own: Callable[[str], None] | None = None,
        output: list[Any] | None = None,
    ) -> None:
        self.record = record
        self.credential_id = credential_id
        self.pool = pool
        self.clock = clock
        self.own = own
        self.limited: Limited | None = None
        self.output = output
        """Where the output items streamed are collected, if they are (`Exchange.output`)."""

    def learn_event(self, event: bytes) -> Any:
        """The same for one raw SSE event (`event:` and `data:` lines)."""
        if _worth_parsing(event, b"event: error") or (
            self.output is not None and _ITEM_DONE in event
        ):
            return self._learn(event_data(event)[1])
        return None

    def learn(self, data: bytes) -> Any:
        """`data`: one event's JSON. The parsed payload, or None if nothing was to be learnt."""
        return self._learn(data) if _worth_parsing(data, _ERROR_TYPE) else None

    def read(self, data: bytes) -> Any:
        """One event's parsed JSON (None if it is not JSON), learning from it on the way."""
        if _worth_parsing(data, _ERROR_TYPE):
            return self._learn(data)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return None

    def _learn(self, data: bytes) -> Any:
        try:
            payload: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(payload, dict):
            return payload
        kind = payload.get("type")
        if kind == "response.output_item.done" and self.output is not None:
            self.output.append(payload.get("item"))
        elif kind == "response.created":
            self._created(payload.get("response"))
        elif kind == "codex.rate_limits":
            if (quota := parse_rate_limits_event(payload, self.clock.now())) is not None:
                self.pool.apply(Observed(self.credential_id, self.clock.now(), quota, "stream"))
        elif kind in ("error", "response.failed"):
            failure = event_failure(payload, self.clock.now())
            if failure is not None:
                limited = failure.verdict.outcome(self.credential_id, self.clock.now())
                if isinstance(limited, Limited):
                    self.limited = limited
        if b'"usage' in data:
            self.record.usage = merge(self.record.usage, usage_in_event(payload))
        return payload

    def _created(self, response: Any) -> None:
        response_id = response.get("id") if isinstance(response, dict) else None
        if isinstance(response_id, str):
            self.record.response_id = self.record.response_id or response_id
            if self.own is not None:
                self.own(response_id)
