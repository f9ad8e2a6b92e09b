"""A request body's JSON object, read a field at a time.

A coding agent's request is mostly its conversation (tens to hundreds of KB of input items),
and routing reads a handful of small fields (`model`, `stream`, `store`, `reasoning`, a cache
key). Building the whole body as Python objects cost more than routing it. simdjson validates
the whole document at once and builds a field only when it is read; a request that passes
through unchanged is sent on as the bytes it came as (a 60 KB Responses turn: −35 % of
quotapool's own instructions per request, bench/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import simdjson


class LazyObject(Mapping[str, Any]):
    """A top-level JSON object whose fields become Python values when first read (each once).
    `plain` gives the whole of it as a dict (what translators and `orjson.dumps` take).

    Its names are listed once: asking simdjson for an absent name costs a C++ exception
    (~20 k instructions, against ~5 k for parsing a small body), and routing asks for many
    absent ones."""

    __slots__ = ("_body", "_doc", "_names", "_read")

    def __init__(self, doc: simdjson.Object, names: list[str], body: bytes | str) -> None:
        self._doc = doc
        self._names = names
        self._body = body
        self._read: dict[str, Any] = dict.fromkeys(names, _UNREAD)

    def whole(self) -> dict[str, Any]:
        """All of it, as a new dict (orjson builds a whole document faster than field by
        field)."""
        whole: dict[str, Any] = orjson.loads(self._body)
        return whole

    def __getitem__(self, key: str) -> Any:
        value = self._read[key]  # (KeyError: it has no such name)
        return self._build(key) if value is _UNREAD else value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._read.get(key, default)
        return self._build(key) if value is _UNREAD else value

    def _build(self, key: str) -> Any:
        value = self._read[key] = _python(self._raw(key))
        return value

    def _raw(self, key: str) -> Any:
        # (simdjson looks a name up as a C string: one with a NUL would end there)
        return self._doc[key] if "\0" not in key else dict(self._doc.items())[key]

    def head(self, key: str) -> Any:
        """`self.get(key)`, except that of an array only the first element is built: a list of
        at most one (the first turn of a conversation says which one it is)."""
        if (value := self._read.get(key)) is not _UNREAD:
            return value[:1] if isinstance(value, list) else value
        found = self._raw(key)
        if isinstance(found, simdjson.Array):
            return [_python(found[0])] if len(found) else []
        return self._build(key)

    def __contains__(self, key: object) -> bool:
        return key in self._read

    @property
    def built(self) -> set[str]:
        """The names whose values were built."""
        return {name for name, value in self._read.items() if value is not _UNREAD}

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"LazyObject({self._names!r})"


_UNREAD = object()
"""A field not built yet."""


def _python(value: Any) -> Any:
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


LAZY_FROM_BYTES = 4096
"""Smaller bodies are parsed whole by orjson: below a few KB that costs less than a lazy
document's set-up (~20 k instructions against ~6 k for a 70-byte body; a 60 KB conversation:
~260 k against ~460 k)."""


def loads_object(body: bytes | str) -> Mapping[str, Any] | Any:
    """`body` parsed: a `LazyObject` when it is a JSON object of `LAZY_FROM_BYTES` or more with
    distinct top-level names, else what `orjson.loads` makes of it (its errors included:
    `orjson.JSONDecodeError`).

    A document simdjson refuses or reads otherwise (an integer past 64 bits, which orjson
    reads as a float) and one with a name given twice are parsed by orjson, so a body means
    what it meant before; with a name given twice, the last counts, as for the upstream's
    parser."""
    if len(body) < LAZY_FROM_BYTES:
        return orjson.loads(body)
    try:
        doc = simdjson.Parser().parse(body)
    except (ValueError, RuntimeError):  # (UnicodeDecodeError is a ValueError)
        return orjson.loads(body)
    if not isinstance(doc, simdjson.Object):
        return _python(doc)
    names = list(doc.keys())
    if len(names) != len(set(names)):
        return orjson.loads(body)
    return LazyObject(doc, names, body)


def head(payload: Mapping[str, Any], key: str) -> Any:
    """`payload.get(key)`, an array of it perhaps cut to its first element (`LazyObject.head`)."""
    return payload.head(key) if isinstance(payload, LazyObject) else payload.get(key)


def plain(payload: Mapping[str, Any]) -> dict[str, Any]:
    """`payload` as a dict (a `LazyObject` read whole)."""
    if isinstance(payload, dict):
        return payload
    return payload.whole() if isinstance(payload, LazyObject) else dict(payload)
