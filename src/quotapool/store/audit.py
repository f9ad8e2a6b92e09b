"""The audit log: who changed what, when, from what to what. Written at once (a change is rare
and must not be lost), read newest last; never a secret in it."""

from __future__ import annotations

import getpass
import socket
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select

from quotapool.clock import Clock
from quotapool.store.sql.schema import audit


def cli_actor() -> str:
    """Who a change made by the command line is recorded as: `cli (user@host)`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        user = "?"
    return f"cli ({user}@{socket.gethostname()})"


class AuditLog:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def record(
        self,
        actor: str,
        action: str,
        target: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        """One change (`action` as `account.pause`, `key.create`, `routing.set`…)."""
        row = {
            "at": self.clock.now(),
            "actor": actor,
            "action": action,
            "target": target,
            "before": None if before is None else orjson.dumps(before).decode(),
            "after": None if after is None else orjson.dumps(after).decode(),
        }
        with self.engine.begin() as connection:
            connection.execute(insert(audit), row)

    def recent(
        self, limit: int = 100, since: float | None = None, target: str | None = None
    ) -> list[dict[str, Any]]:
        """The latest changes, oldest first."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(audit.c.at >= since)
        if target is not None:
            query = query.where(audit.c.target == target)
        with self.engine.connect() as connection:
            rows = [
                {str(k): v for k, v in row.items()} for row in connection.execute(query).mappings()
            ]
        for row in rows:
            for side in ("before", "after"):
                row[side] = orjson.loads(row[side]) if row[side] else None
        return rows[::-1]
