"""What every `quotapool` subcommand shares: the --config option and how it fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML file")]
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error (its brackets as text, not markup); raise what it returns."""
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)
