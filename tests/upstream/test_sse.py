"""SSE framing: whole events whatever the chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quotapool.upstream.sse import SSEFramer, event_data, format_event

EVENTS = [format_event(b'{"n":%d}' % i, "tick") for i in range(5)] + [b"data: [DONE]\n\n"]
STREAM = b"".join(EVENTS)


@given(st.lists(st.integers(1, len(STREAM)), max_size=20))
def test_any_chunking_yields_the_same_events(cuts: list[int]) -> None:
    framer = SSEFramer()
    points = sorted({0, len(STREAM), *cuts})
    out: list[bytes] = []
    for start, end in zip(points, points[1:], strict=False):
        out += framer.feed(STREAM[start:end])
    assert out == EVENTS and framer.rest() == b""


def test_crlf_and_unterminated_tail() -> None:
    framer = SSEFramer()
    assert framer.feed(b"event: a\r\ndata: 1\r\n\r\ndata: 2") == [b"event: a\ndata: 1\n\n"]
    assert framer.rest() == b"data: 2\n\n"


def test_event_data() -> None:
    assert event_data(b'event: x\ndata: {"a":1}\n\n') == ("x", b'{"a":1}')
    assert event_data(b"data:line1\ndata: line2\n\n") == (None, b"line1\nline2")
