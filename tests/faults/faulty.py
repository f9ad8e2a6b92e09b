"""Fault injection at the upstream I/O seam: a stand-in for the dispatcher's aiohttp session
that fails (or hands over a poisoned event) at the N-th await of an attempt: opening the
request, reading a body, each read of a stream."""

from __future__ import annotations

from typing import Any


class Injected(Exception):
    """A fault nobody planned for (a bug, an unexpected library error)."""


class FaultySession:
    def __init__(self, real: Any) -> None:
        self.real = real
        self.countdown = 0
        self.fault: BaseException | bytes = Injected("injected")
        """Raised at the chosen await, or (bytes) returned as the stream's next chunk."""
        self.points = 0
        """Await points the last request passed."""

    def arm(self, at: int, fault: BaseException | bytes) -> None:
        self.countdown, self.fault, self.points = at, fault, 0

    def tick(self) -> bytes | None:
        self.points += 1
        self.countdown -= 1
        if self.countdown == 0:
            if isinstance(self.fault, BaseException):
                raise self.fault
            return self.fault
        return None

    def post(self, *args: Any, **kwargs: Any) -> _Request:
        return _Request(self, self.real.post(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class _Request:
    def __init__(self, session: FaultySession, request: Any) -> None:
        self.session, self.request = session, request

    async def __aenter__(self) -> _Response:
        self.session.tick()
        response = await self.request.__aenter__()
        self.session.tick()
        return _Response(self.session, response)

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.request.__aexit__(*exc)


class _Response:
    def __init__(self, session: FaultySession, response: Any) -> None:
        self.session, self.response = session, response
        self.content = _Content(session, response.content)

    async def read(self) -> bytes:
        self.session.tick()
        body: bytes = await self.response.read()
        return body

    def __getattr__(self, name: str) -> Any:
        return getattr(self.response, name)


class _Content:
    def __init__(self, session: FaultySession, content: Any) -> None:
        self.session, self.content = session, content

    async def readany(self) -> bytes:
        poisoned = self.session.tick()
        if poisoned is not None:
            return poisoned
        chunk: bytes = await self.content.readany()
        return chunk
