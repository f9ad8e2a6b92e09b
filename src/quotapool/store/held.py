"""Rows that neither the database nor the journal takes (a full disk while the database is
out): they wait in memory, serialized, up to a bound; past it they are lost, and said so once."""

from __future__ import annotations

import logging
from collections import deque

log = logging.getLogger(__name__)


class HeldRows:
    def __init__(self, table: str, max_bytes: int) -> None:
        self.table = table
        self.max_bytes = max_bytes
        self.lines: deque[bytes] = deque()
        """Rows, serialized, oldest first."""
        self.bytes = 0
        self._full = False

    def __len__(self) -> int:
        return len(self.lines)

    def hold(self, lines: list[bytes]) -> int:
        """Keep `lines` while they fit; the number that did not (lost)."""
        lost = 0
        for line in lines:
            if self.bytes + len(line) > self.max_bytes:
                lost += 1
                if not self._full:
                    self._full = True
                    log.error(
                        "%s: rows are being lost: %d MiB of them wait in memory, the most "
                        "allowed, while neither the database nor the journal takes them",
                        self.table,
                        self.max_bytes // (1024 * 1024),
                    )
                continue
            self.lines.append(line)
            self.bytes += len(line)
        return lost

    def clear(self) -> int:
        """Let every row go (kept elsewhere, or lost); how many there were."""
        count = len(self.lines)
        self.lines.clear()
        self.bytes = 0
        self._full = False
        return count
