"""Server-sent events: split a byte stream into whole events, read their fields."""

from __future__ import annotations

KEEPALIVE = b": keep-alive\n\n"


MAX_EVENT_BYTES = 32 * 1024 * 1024
"""The default bound of one event (image outputs come in events of a few MB)."""


class EventTooLarge(ValueError):
    """An upstream event past the bound: a stream without blank lines grows one without end."""


class SSEFramer:
    """Cuts incoming chunks into complete events (each ending in a blank line), none larger
    than `limit` bytes (`EventTooLarge`). An unfinished event is kept as its chunks and joined
    once, when it ends: a large event costs its size, not its size squared."""

    __slots__ = ("_parts", "_size", "limit")

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self.limit = limit

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        parts = self._parts
        if chunk.rfind(b"\n\n") < 0 and not (
            parts and chunk[:1] == b"\n" and parts[-1][-1:] == b"\n"
        ):
            self._keep(chunk)
            return []
        buffer = b"".join((*parts, chunk)) if parts else chunk
        end = buffer.rfind(b"\n\n")
        self._parts, self._size = [], 0
        self._keep(buffer[end + 2 :])
        events = [event + b"\n\n" for event in buffer[:end].split(b"\n\n") if event.strip()]
        if end > self.limit and any(len(event) > self.limit for event in events):
            raise self._too_large()
        return events

    def _keep(self, part: bytes) -> None:
        if not part:
            return
        self._size += len(part)
        if self._size > self.limit:
            raise self._too_large()
        self._parts.append(part)

    def _too_large(self) -> EventTooLarge:
        return EventTooLarge(f"an upstream event exceeds {self.limit} bytes")

    def rest(self) -> bytes:
        """Whatever is left when the stream ends (an event without its blank line)."""
        rest = b"".join(self._parts)
        self._parts, self._size = [], 0
        return rest + b"\n\n" if rest.strip() else b""


def event_data(event: bytes) -> tuple[str | None, bytes]:
    """The `event:` name and the joined `data:` payload of one raw event."""
    name: str | None = None
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode(errors="replace")
    return name, b"\n".join(data)


def format_event(data: bytes, name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + data + b"\n\n"
