"""Server-sent events: split a byte stream into whole events, read their fields."""

from __future__ import annotations

KEEPALIVE = b": keep-alive\n\n"


class SSEFramer:
    """Cuts incoming chunks into complete events (each ending in a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        buffer = self._buffer + chunk if self._buffer else chunk
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[end + 2 :]
        return [event + b"\n\n" for event in buffer[:end].split(b"\n\n") if event.strip()]

    def rest(self) -> bytes:
        """Whatever is left when the stream ends (an event without its blank line)."""
        rest, self._buffer = self._buffer, b""
        return rest + b"\n\n" if rest.strip() else b""


def event_data(event: bytes) -> tuple[str | None, bytes]:
    """The `event:` name and the joined `data:` payload of one raw event."""
    name: str | None = None
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode()
    return name, b"\n".join(data)


def format_event(data: bytes, name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + data + b"\n\n"
