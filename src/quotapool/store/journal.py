"""An append-only local file that holds rows the database could not take yet.

One JSON object per line. Rows are replayed in order, in chunks; after each chunk is stored the
replay position is saved beside the file, so a crash during replay repeats at most one chunk.
The file is private to its owner (0600): rows name models, credentials and errors."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

PRIVATE = 0o600


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._position = path.with_name(path.name + ".pos")
        self._fd: int | None = None
        self._end_torn_line()

    def pending(self) -> bool:
        """Rows are waiting (from this run or one that ended while the database was out)."""
        try:
            return self.path.stat().st_size > self._read_position()
        except FileNotFoundError:
            return False

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Add rows at the end, written through to the operating system before returning."""
        self.append_lines(b"".join(orjson.dumps(row) + b"\n" for row in rows))

    def append_lines(self, data: bytes) -> None:
        """Add whole lines at the end; all of them or none (`OSError`, the file as it was)."""
        fd = self._opened()
        try:
            _write_whole(fd, data)
        finally:
            os.close(fd)

    def open(self) -> int:
        """Keep the file open for `write` (rows written ahead, one call each); its size now."""
        self._fd = self._opened()
        return os.fstat(self._fd).st_size

    def _opened(self) -> int:
        """The file open for appending (created private, its folder too)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)

    def write(self, data: bytes) -> None:
        """Append `data` (whole lines) to the file kept open; it survives this process. All of
        it or none (`OSError`, the file as it was)."""
        assert self._fd is not None, "open() first"
        _write_whole(self._fd, data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def chunks(self, size: int) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Unreplayed rows, `size` at a time, each with the position to `commit` once stored.
        A torn last line (a crash while appending) is skipped."""
        with self.path.open("rb") as file:
            file.seek(self._read_position())
            rows: list[dict[str, Any]] = []
            for line in file:
                if line.endswith(b"\n"):
                    with contextlib.suppress(orjson.JSONDecodeError):
                        rows.append(orjson.loads(line))
                if len(rows) >= size:
                    yield rows, file.tell()
                    rows = []
            if rows:
                yield rows, file.tell()

    def commit(self, position: int) -> None:
        """Rows before `position` are stored."""
        tmp = self._position.with_name(self._position.name + ".tmp")
        tmp.write_text(str(position))
        os.replace(tmp, self._position)

    def clear(self) -> None:
        """Every row is stored: start a new file."""
        for path in (self.path, self._position):
            path.unlink(missing_ok=True)

    def _end_torn_line(self) -> None:
        """A crash while appending may leave half a line: end it, so the next row starts clean
        (the half row is skipped on replay)."""
        with contextlib.suppress(FileNotFoundError), self.path.open("rb+") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                file.write(b"\n")

    def _read_position(self) -> int:
        try:
            return int(self._position.read_text())
        except (FileNotFoundError, ValueError):
            return 0


def _write_whole(fd: int, data: bytes) -> None:
    """Append `data` to `fd` whole: a disk that fills midway leaves no half line behind (the
    next row would be glued to it, and both skipped on replay). A write that fails writes
    nothing; one cut short is taken back."""
    written = os.write(fd, data)
    if written < len(data):
        with contextlib.suppress(OSError):
            os.ftruncate(fd, os.fstat(fd).st_size - written)
        raise OSError(errno.ENOSPC, "the disk took only part of the rows")
