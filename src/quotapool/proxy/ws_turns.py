"""The turns of one Codex WebSocket: each `response.create` frame is a request of its own.

A socket is opened once and carries many turns. Each is admitted like an HTTP request: its
client key still valid (revoked, rotated or expired since the upgrade: the socket is closed),
its model allowed, its limits not reached; then counted and logged with its own row. The
socket's own row (status 101) says which account took it and why.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from quotapool.control.keys import KeyRing
from quotapool.domain.client import ClientKey
from quotapool.jsonlazy import loads_object
from quotapool.proxy.errors import Dialect, ErrorResponse
from quotapool.proxy.record import Record
from quotapool.upstream.signals import event_failure

ENDS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
"""Upstream events that end a turn."""
_END_MARKERS = tuple(f'"{kind}"'.encode() for kind in ENDS)
LEFT_OPEN = "the socket closed before the response ended"


@dataclass(frozen=True, slots=True)
class Refused:
    """A turn the client is refused: `frame` tells it why; `close` ends the socket too."""

    frame: str
    status: int
    close: bool


def refusal_frame(response: ErrorResponse) -> str:
    """An error as the Codex backend sends one over a socket: `{"type": "error", "status", …}`."""
    body = orjson.loads(response.body)
    return orjson.dumps({"type": "error", "status": response.status, **body}).decode()


class Turns:
    def __init__(
        self,
        session: Record,
        key: ClientKey | None,
        keys: KeyRing | None,
        submit: Callable[[dict[str, Any]], None],
        now: Callable[[], float],
    ) -> None:
        self._session = session
        self._key = key
        self._keys = keys
        self._submit = submit
        self._now = now
        self._open: deque[Record] = deque()
        self._count = 0

    @property
    def current(self) -> Record:
        """Where what the upstream says now is noted: the oldest open turn, else the socket."""
        return self._open[0] if self._open else self._session

    async def begin(self, frame: str) -> Refused | None:
        """A client frame: when it is a `response.create`, open its turn, or refuse it."""
        try:
            payload = loads_object(frame)  # (its type and model: the conversation stays unbuilt)
        except orjson.JSONDecodeError:
            return None  # not a request: the upstream answers it as it would
        if not isinstance(payload, Mapping) or payload.get("type") != "response.create":
            return None
        session = self._session
        self._count += 1
        turn = Record(
            f"{session.request_id}.{self._count}", self._now(), session.route, session.path
        )
        turn.stream = True
        turn.client_key, turn.profile, turn.credential = (
            session.client_key,
            session.profile,
            session.credential,
        )
        model = payload.get("model")
        turn.model = turn.sent_model = model if isinstance(model, str) else None
        if (refused := await self._admission(turn)) is not None:
            return refused
        turn.attempts = 1
        self._open.append(turn)
        return None

    async def _admission(self, turn: Record) -> Refused | None:
        key, keys = self._key, self._keys
        if key is None or keys is None:
            return None
        current = keys.still_valid(key, Dialect.CODEX)
        if isinstance(current, ErrorResponse):
            return self._refuse(turn, current, close=True)
        over = keys.admit(current, turn.model or "", Dialect.CODEX, turn.request_id)
        if over is None:
            over = await keys.confirm(current, turn.request_id, Dialect.CODEX)
        return self._refuse(turn, over, close=False) if over is not None else None

    def _refuse(self, turn: Record, response: ErrorResponse, *, close: bool) -> Refused:
        turn.status, turn.error = response.status, response.body.decode()
        self._finish(turn)
        return Refused(refusal_frame(response), response.status, close)

    def event(self, data: bytes, payload: Any) -> None:
        """An upstream frame (`payload`: its JSON if it was parsed on the way): its turn's
        first byte, or its end."""
        if not self._open:
            return
        turn = self._open[0]
        if turn.ttfb_ms is None:
            turn.ttfb_ms = (self._now() - turn.at) * 1000.0
        if not any(marker in data for marker in _END_MARKERS):
            return
        if payload is None:
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                return
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind not in ENDS:
            return
        self._open.popleft()
        if kind in ("response.completed", "response.incomplete"):
            turn.status = 200
        else:
            failure = event_failure(payload, self._now())
            declared = payload.get("status")
            turn.status = (
                failure.status
                if failure is not None
                else declared
                if isinstance(declared, int)
                else 400
            )
            turn.error = data[:2000].decode(errors="replace")
        self._finish(turn)

    def close(self) -> None:
        """The socket ended: turns still open are logged as cut."""
        while self._open:
            turn = self._open.popleft()
            turn.status, turn.error = 499, LEFT_OPEN
            self._finish(turn)

    def _finish(self, turn: Record) -> None:
        turn.latency_ms = (self._now() - turn.at) * 1000.0
        self._submit(turn.row())
