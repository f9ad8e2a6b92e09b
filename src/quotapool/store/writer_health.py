"""What `/ready` and the metrics report about a batched writer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """What `/ready` reports about a writer."""

    table: str
    state: str
    """"ok"; "journaling" while the database cannot take rows; "holding" while the journal
    cannot take them either (they wait in memory)."""
    queued: int
    journal_pending: bool
    lost: int
    """Rows never stored: refused by the database even alone, dropped from a full queue, or
    past the memory bound while neither the database nor the journal took them."""
    held: int = 0
    """Rows waiting in memory for the database or the journal."""
    journal_failing: bool = False
    """The last write to the journal failed (a full disk): rows are not written ahead."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "queued": self.queued,
            "journal_pending": self.journal_pending,
            "lost": self.lost,
            "held": self.held,
            "journal_failing": self.journal_failing,
        }
