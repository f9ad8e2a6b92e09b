"""Every setting and every command is documented: README.md and docs/ name each one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main

from quotapool.cli.main import app
from quotapool.config import ProfileConfig, RoutingConfig, Settings

ROOT = Path(__file__).resolve().parents[1]


def documentation() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(page.read_text() for page in pages)


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield path
        return
    for name, sub in subcommands.items():
        yield from commands(sub, (*path, name))


def test_every_setting_is_documented() -> None:
    text = documentation()
    names = set(Settings.model_fields) | set(RoutingConfig.model_fields)
    names |= set(ProfileConfig.model_fields)
    missing = [
        name
        for name in sorted(names)
        if not re.search(rf"(`|\[|\.|^|\s){name}(`| =|\]|\.)", text, re.M)
    ]
    assert missing == [], f"settings no page documents: {missing}"


def test_every_command_is_documented() -> None:
    text = documentation()
    found = list(commands(typer.main.get_command(app)))
    assert len(found) > 15
    missing = []
    for path in found:
        *group, leaf = path
        # `quotapool accounts pause|resume|remove NAME` documents the three
        pattern = rf"quotapool {' '.join(group)}{' ' if group else ''}(\S*\|)?{leaf}\b"
        if not re.search(pattern, text):
            missing.append(" ".join(path))
    assert missing == [], f"commands no page documents: {missing}"


def test_every_link_between_pages_leads_somewhere() -> None:
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")]
    broken = [
        f"{page.name}: {target}"
        for page in pages
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text())
        if not target.startswith("http") and not (page.parent / target).exists()
    ]
    assert broken == []
