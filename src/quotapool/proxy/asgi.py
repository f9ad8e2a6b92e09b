"""ASGI types and the few send helpers the proxy needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"


async def send_body(
    send: Send, status: int, body: bytes, headers: Headers, content_type: bytes | None = JSON
) -> None:
    """A whole response; `content_type=None` when `headers` already carry the upstream's."""
    if content_type is not None:
        headers.append((b"content-type", content_type))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_STREAM_OWN = frozenset({b"content-type", b"cache-control"})


async def start_stream(send: Send, status: int, headers: Headers) -> None:
    """An event stream: its content type and cache-control are ours (never the upstream's too)."""
    headers[:] = [h for h in headers if h[0] not in _STREAM_OWN]
    headers.append((b"content-type", SSE))
    headers.append((b"cache-control", b"no-cache"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
