"""A request's row is in the write-ahead journal before the last byte of its answer leaves:
a kill -9 right after a client has its whole answer cannot lose the row (it once lost one in
9,709 answered requests: the row was written after the answer's end)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from quotapool.compose import build
from quotapool.config import Settings
from quotapool.proxy.asgi import Message
from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread

CHAT = b'{"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]%s}'


@pytest.mark.parametrize("stream", [False, True])
def test_the_row_is_written_ahead_before_the_answers_last_byte(
    tmp_path: Path, stream: bool
) -> None:
    fake = FakeUpstream()
    fake.add("sk-openai", name="openai-key")
    with run_in_thread(fake) as upstream:
        credential = {"kind": "openai", "name": "k", "api_key": "sk-openai"}
        settings = Settings(
            home=tmp_path,
            credentials=[{**credential, "base_url": f"{upstream}/v1"}],  # type: ignore[list-item]
        )
        journal = tmp_path / "journal" / "requests.jsonl"
        body = CHAT % (b', "stream": true' if stream else b"")
        seen = asyncio.run(serve_one(settings, body, journal))
    assert seen["status"] == 200
    assert seen["row_in_journal_at_last_byte"] is True


async def serve_one(settings: Settings, body: bytes, journal: Path) -> dict[str, Any]:
    app = build(settings).app
    lifespan: asyncio.Queue[Message] = asyncio.Queue()
    said: asyncio.Queue[Message] = asyncio.Queue()
    running = asyncio.ensure_future(app({"type": "lifespan"}, lifespan.get, said.put))
    await lifespan.put({"type": "lifespan.startup"})
    assert (await said.get())["type"] == "lifespan.startup.complete"
    seen: dict[str, Any] = {}
    parts: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if parts:
            return parts.pop(0)
        await asyncio.Event().wait()  # (the client stays: no disconnect)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            seen["id"] = dict(message["headers"])[b"x-quotapool-request-id"].decode()
        elif not message.get("more_body", False):
            written = journal.read_text() if journal.exists() else ""
            seen["row_in_journal_at_last_byte"] = f'"request_id":"{seen["id"]}"' in written

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 40000),
    }
    await app(scope, receive, send)
    await lifespan.put({"type": "lifespan.shutdown"})
    await running
    return seen
