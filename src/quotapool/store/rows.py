"""Rows made fit for their table before they are written: one bad value never costs a batch.

Strings are cut to their column (the cut is noted with the original length), NUL characters
(PostgreSQL refuses them) replaced, integers clamped to the column's range, non-finite floats
stored as NULL. Pure."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, Table

INT32 = (-(2**31), 2**31 - 1)
"""`Integer` is 32-bit on PostgreSQL."""
TEXT_LIMIT = 64 * 1024
"""Unbounded text columns (errors, decisions) keep at most this many characters."""

Fit = Callable[[Any], Any]


def cut(value: str, limit: int) -> str:
    """`value` within `limit` characters; a cut one ends saying how long it was."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if len(value) <= limit:
        return value
    note = f"…[{len(value)} chars]"
    return value[: max(0, limit - len(note))] + note


def _string(limit: int) -> Fit:
    def fit(value: Any) -> Any:
        if value is None:
            return None
        text = value if isinstance(value, str) else str(value)
        if len(text) <= limit and "\x00" not in text:
            return text
        return cut(text, limit)

    return fit


def _integer(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = int(value)
    elif not isinstance(value, int):
        return None
    return min(max(value, INT32[0]), INT32[1])


def _float(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _boolean(value: Any) -> Any:
    return None if value is None else bool(value)


def _fit_for(column: Any) -> tuple[Fit, Any]:
    """How a column's values are made to fit, and its neutral value."""
    kind = column.type
    if isinstance(kind, Boolean):
        return _boolean, False
    if isinstance(kind, Integer):
        return _integer, 0
    if isinstance(kind, Float):
        return _float, 0.0
    if isinstance(kind, String):
        return _string(kind.length or TEXT_LIMIT), ""
    return (lambda value: value), None


class RowShape:
    """The columns a table's rows are written with, and how each value is made to fit.

    A value that already fits passes a type and range check done inline (this runs for every
    row the writer stores, on the proxy's core); only a misfit goes through its fit function."""

    def __init__(self, table: Table) -> None:
        written = [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]
        self.columns: tuple[str, ...] = tuple(c.name for c in written)
        self._strings: list[tuple[int, int]] = []
        self._integers: list[int] = []
        self._floats: list[int] = []
        self._others: list[tuple[int, Fit]] = []
        for index, column in enumerate(written):
            kind = column.type
            if isinstance(kind, String):
                self._strings.append((index, kind.length or TEXT_LIMIT))
            elif isinstance(kind, Integer) and not isinstance(kind, Boolean):
                self._integers.append(index)
            elif isinstance(kind, Float):
                self._floats.append(index)
            else:
                self._others.append((index, _fit_for(column)[0]))
        self._required = [(i, f[0]) for i, c in enumerate(written) if (f := _fallback(c))]

    def values(self, row: Mapping[str, Any]) -> list[Any]:
        """The row's values in column order, each fit for its column. A missing value of a
        NOT NULL column takes the column's default (or a neutral value)."""
        out = list(map(row.get, self.columns))
        for index, limit in self._strings:
            value = out[index]
            if value is not None and (
                value.__class__ is not str or len(value) > limit or "\x00" in value
            ):
                out[index] = _string(limit)(value)
        for index in self._integers:
            value = out[index]
            if value is not None and (
                value.__class__ is not int or not INT32[0] <= value <= INT32[1]
            ):
                out[index] = _integer(value)
        for index in self._floats:
            value = out[index]
            if value is not None and (value.__class__ is not float or not math.isfinite(value)):
                out[index] = _float(value)
        for index, fit in self._others:
            out[index] = fit(out[index])
        for index, fallback in self._required:
            if out[index] is None:
                out[index] = fallback
        return out


def _fallback(column: Any) -> tuple[Any] | None:
    """What replaces a NULL in a NOT NULL column: its default, else its type's neutral value."""
    if column.nullable:
        return None
    default = column.default
    if default is not None and not callable(default.arg):
        return (default.arg,)
    return (_fit_for(column)[1],)
