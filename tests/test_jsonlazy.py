"""A body read a field at a time means what it meant parsed whole (orjson)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotapool.domain.request import Route
from quotapool.jsonlazy import LAZY_FROM_BYTES, LazyObject, head, loads_object, plain
from quotapool.proxy.errors import Dialect
from quotapool.proxy.parse import parse_request

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
OBJECTS = st.dictionaries(st.text(), VALUES, max_size=8)


def padded(body: bytes) -> bytes:
    """`body` made large enough to be read lazily (whitespace after a document is JSON)."""
    return body + b" " * LAZY_FROM_BYTES


def test_a_small_body_is_parsed_whole() -> None:
    assert type(loads_object(b'{"model": "m"}')) is dict
    assert isinstance(loads_object(padded(b'{"model": "m"}')), LazyObject)


@settings(max_examples=300, deadline=None)
@given(OBJECTS, st.data())
def test_every_field_read_lazily_is_what_orjson_reads(obj: dict[str, Any], data: Any) -> None:
    body = padded(orjson.dumps(obj))
    expected = orjson.loads(body)
    parsed = loads_object(body)
    assert isinstance(parsed, LazyObject)
    assert list(parsed) == list(expected) and len(parsed) == len(expected)
    for key in data.draw(st.permutations(list(expected))):
        assert key in parsed and parsed[key] == expected[key]
        assert parsed.get(key) == expected[key]
    assert "\0absent" not in parsed and parsed.get("\0absent") is None
    assert plain(parsed) == expected and {**parsed} == expected


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "a", "model": "b"}',  # a name given twice: the last counts
        b'{"n": 123456789012345678901234567890}',  # past 64 bits: orjson's float
        b"[1, 2]",
        b'"text"',
        b"17",
        b"null",
    ],
)
def test_what_simdjson_reads_otherwise_is_parsed_by_orjson(body: bytes) -> None:
    parsed = loads_object(padded(body))
    assert not isinstance(parsed, LazyObject)
    assert parsed == orjson.loads(body)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"a": 1} x', b'{"a": "\\ud800"}', b'{"a": "\xff"}', b'{"a": 1e400}', b"{'a': 1}"],
)
def test_a_body_orjson_refuses_is_refused_as_before(body: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        loads_object(padded(body))
    with pytest.raises(orjson.JSONDecodeError):
        loads_object(body)


def test_a_name_with_a_nul_is_looked_up_whole() -> None:
    """simdjson looks names up as C strings; a NUL in the name asked for must not cut it."""
    parsed = loads_object(padded(b'{"": 1, "a\\u0000b": 2, "model": "m"}'))
    assert "\0x" not in parsed and parsed.get("\0x") is None
    assert "a\0b" in parsed and parsed["a\0b"] == 2 and "a" not in parsed
    assert parsed["model"] == "m" and 3 not in parsed


def test_the_head_of_a_conversation_builds_its_first_item_only() -> None:
    parsed = loads_object(padded(orjson.dumps({"input": [{"n": 1}, {"n": 2}], "s": "x", "e": []})))
    assert head(parsed, "input") == [{"n": 1}] and "input" not in parsed.built
    assert head(parsed, "s") == "x" and head(parsed, "e") == [] and head(parsed, "no") is None
    assert parsed["input"] == [{"n": 1}, {"n": 2}] and head(parsed, "input") == [{"n": 1}]
    assert head({"input": [1, 2]}, "input") == [1, 2]  # a dict is what it is


def test_a_responses_turn_is_read_lazily_a_chat_or_messages_body_whole() -> None:
    """A Responses turn mostly goes on as it came; chat and Messages bodies are translated
    often enough (Claude Code on ChatGPT accounts) that reading them whole costs less."""
    big = {"model": "m", "stream": True, "store": False, "pad": "x" * LAZY_FROM_BYTES}
    body = orjson.dumps({**big, "input": "hi", "messages": [{"role": "user", "content": "hi"}]})
    kinds = {
        route: type(parse_request(route, body, [], Dialect.OPENAI).payload)
        for route in (Route.RESPONSES, Route.COMPACT, Route.CHAT, Route.MESSAGES)
    }
    assert kinds == {
        Route.RESPONSES: LazyObject,
        Route.COMPACT: LazyObject,
        Route.CHAT: dict,
        Route.MESSAGES: dict,
    }
