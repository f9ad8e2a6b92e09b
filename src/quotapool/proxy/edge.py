"""The HTTP edge: uvicorn's httptools protocol with the limits a proxy needs before any request
reaches the app. A connection that is slow to send its headers (408), headers over a size limit
(431), and connections over a limit (503) are answered with a clear JSON error and closed, so
held-open or half-sent requests cannot exhaust memory or file descriptors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def _error(status: int, message: str) -> bytes:
    body = orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}
    )
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
    """HttpToolsProtocol plus header timeout, header size limit and connection limit."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: EdgeLimits = getattr(config, "edge_limits", EdgeLimits())
        self._header_bytes = 0
        """Bytes of the request line and headers parsed so far."""
        self._raw_header_bytes = 0
        """Bytes received while the headers were not complete (a header that never ends)."""
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
        self._await_headers()

    def _await_headers(self) -> None:
        if self._header_timer is None:
            timeout = self.limits.header_timeout
            self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        message = (
            f"The request headers did not arrive within {self.limits.header_timeout:g} s; "
            "send the whole request at once."
        )
        self._refuse(408, message)

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_error(status, message))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes <= self.limits.max_header_bytes:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes <= self.limits.max_header_bytes:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        too_large = self._header_bytes > self.limits.max_header_bytes
        self._header_bytes = self._raw_header_bytes = 0  # the next request starts afresh
        if too_large:
            self._too_large()
        elif not self._refused:
            super().on_headers_complete()

    def _too_large(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(431, f"The request line and headers exceed {limit} bytes; send smaller ones.")

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._header_timer is not None:  # still waiting for this request's headers
            self._raw_header_bytes += len(data)
        super().data_received(data)
        waiting = self._header_timer is not None
        if waiting and self._raw_header_bytes > self.limits.max_header_bytes:
            self._too_large()  # a header that never ends

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)
