"""What every `quotapool` subcommand shares: the --config option and how it fails."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quotapool.clock import SystemClock

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML file")]


class LazyConsole:
    """A rich Console made when something is printed, so `quotapool --help` does not pay for
    importing rich; made afresh each time, as it reads the terminal's width (`COLUMNS`)."""

    def __init__(self, **options: Any) -> None:
        self._options = options

    def real(self) -> Console:
        """A Console, for what needs one itself (a progress bar, the demo)."""
        from rich.console import Console

        return Console(**self._options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


def escape(text: str) -> str:
    """`text` with its square brackets shown as text, not read as rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


console: Any = LazyConsole()
clock = SystemClock()
"""The CLI's time (as the server's, a `Clock`)."""
err: Any = LazyConsole(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error (its brackets as text, not markup); raise what it returns."""
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def audited(
    engine: Engine,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Record a change the command line made itself (not through a running server, which
    records its own) in the audit log, as `cli (user@host)`."""
    from quotapool.store.audit import AuditLog, cli_actor

    AuditLog(engine, clock).record(cli_actor(), action, target, before, after)


def in_words(seconds: float | None) -> str:
    """`2d3h`, `1h05m`, `12m`; `-` for none."""
    if seconds is None or seconds <= 0:
        return "-"
    hours, rest = divmod(int(seconds), 3600)
    if hours >= 24:
        return f"{hours // 24}d{hours % 24}h"
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m"
