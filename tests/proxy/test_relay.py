"""The stream relay on its own: what a client receives, write by write."""

from __future__ import annotations

import asyncio

from quotapool.domain.credential import Credential, Kind
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.request import Route
from quotapool.proxy.asgi import Message
from quotapool.proxy.errors import Dialect
from quotapool.proxy.exchange import Exchange
from quotapool.proxy.learn import EventLearner
from quotapool.proxy.record import Record
from quotapool.proxy.relay import Sink, UpstreamEvents, stream_events
from quotapool.store.memory import MemoryPoolStore
from quotapool.testing.clock import FakeClock


class Chunks:
    """An upstream body that arrives in the given chunks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def readany(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def relay(*chunks: bytes, hide_usage: bool = False) -> tuple[list[bytes], Record]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    record = Record("qp-test", 0.0, "chat", "/v1/chat/completions")
    pool = MemoryPoolStore(PoolSnapshot((Credential("a", "a", Kind.OPENAI, "http://x"),)))
    learner = EventLearner(record, "a", pool, FakeClock())
    sink = Sink(Exchange(Dialect.OPENAI, send, record, [], lambda: 0.0), [], learner)
    events = UpstreamEvents(Chunks(*chunks), keepalive=5.0)  # type: ignore[arg-type]
    reason = asyncio.run(stream_events(events, None, Route.CHAT, sink, hide_usage=hide_usage))
    assert reason is None
    assert sent[0]["type"] == "http.response.start"
    return [m["body"] for m in sent[1:]], record


def event(text: str) -> bytes:
    return b'data: {"choices":[{"delta":{"content":"' + text.encode() + b'"}}]}\n\n'


def test_events_that_arrive_together_leave_in_one_write_after_the_first() -> None:
    together = event("b") + event("c") + event("d")
    writes, _ = relay(event("a") + together, event("e")[:10], event("e")[10:])
    assert writes == [event("a"), together, event("e"), b""]  # "a" waits for no other event


def test_a_hidden_usage_chunk_drops_out_of_its_write_only() -> None:
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    writes, record = relay(event("a") + event("b") + usage + b"data: [DONE]\n\n", hide_usage=True)
    assert writes == [event("a"), event("b") + b"data: [DONE]\n\n", b""]
    assert record.usage is not None and record.usage.output_tokens == 2
