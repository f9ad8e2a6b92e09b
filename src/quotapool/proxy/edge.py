"""The HTTP edge: uvicorn's httptools protocol with the limits a proxy needs before any request
reaches the app. A connection that is slow to send its headers (408), headers over a size limit
(431), and connections over a limit (503) are answered with a clear JSON error and closed, so
held-open or half-sent requests cannot exhaust memory or file descriptors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from quotapool.proxy.errors import Dialect, error

_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def _error(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 answer, written before any app sees the request."""
    body = error(Dialect.OPENAI, status, message).body
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, _REASONS[status], len(body))
    )
    return head + body


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    header_timeout: float = 10.0
    """Seconds a connection has to send a request's line and headers."""
    max_header_bytes: int = 64 * 1024
    max_connections: int = 1000


def with_limits(config: uvicorn.Config, limits: EdgeLimits) -> uvicorn.Config:
    """`config` serving HTTP through `EdgeProtocol` with these limits."""
    config.http = EdgeProtocol
    config.edge_limits = limits  # type: ignore[attr-defined]  # read by each connection
    return config


class EdgeProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus header timeout, header size limit and connection limit.

    Nothing is added per request when a request arrives whole (the common case): the header
    timer runs from a connection's start and, later, only while a request's headers are
    incomplete after a read; sizes are counted per read, not per header."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: EdgeLimits = getattr(config, "edge_limits", EdgeLimits())
        self._awaiting_headers = True
        self._received = 0
        """Bytes received while this request's headers were incomplete."""
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            message = (
                f"quotapool is serving its limit of {self.limits.max_connections} connections; "
                "retry shortly (raise max_connections if this load is expected)."
            )
            self._refuse(503, message)
            return
        self._start_header_timer()

    def _start_header_timer(self) -> None:
        timeout = self.limits.header_timeout
        self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        message = (
            f"The request headers did not arrive within {self.limits.header_timeout:g} s; "
            "send the whole request at once."
        )
        self._refuse(408, message)

    def _too_large(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(431, f"The request line and headers exceed {limit} bytes; send smaller ones.")

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        self._stop_header_timer()
        if not self.transport.is_closing():
            self.transport.write(_error(status, message))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._stop_header_timer()
        limit = self.limits.max_header_bytes
        if self._received > limit and (
            len(self.url) + sum(len(n) + len(v) for n, v in self.headers) > limit
        ):
            self._too_large()
        self._received = 0
        if not self._refused:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_headers:
            self._received += len(data)
        super().data_received(data)
        if self._awaiting_headers and not self._refused:
            if self._received > self.limits.max_header_bytes:
                self._too_large()  # headers that never end
            elif self._header_timer is None:
                self._start_header_timer()  # a request whose headers come in pieces

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)
