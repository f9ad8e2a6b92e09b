"""What every `quotapool` subcommand shares: the --config option and how it fails."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quotapool.clock import SystemClock

if TYPE_CHECKING:
    from rich.console import Console

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
