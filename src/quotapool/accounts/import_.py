"""Reading Codex `auth.json` files into logins: every file checked before anything is saved."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from quotapool.accounts.jwt import TokenError, identity
from quotapool.domain.credential import control_characters
from quotapool.store.accounts import CodexLogin, Tokens


@dataclass(frozen=True, slots=True)
class ImportProblem:
    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def auth_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the `*.json` files inside the directories named (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
        else:
            found.append(path)
    return found


def read_auth_file(path: Path) -> CodexLogin:
    """One auth.json as a login; raises ImportProblem-worthy ValueError with the reason."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(tokens := data.get("tokens"), dict):
        raise ValueError('no "tokens" object: is this a Codex auth.json from a ChatGPT login?')
    missing = [k for k in ("id_token", "access_token", "refresh_token") if not tokens.get(k)]
    if missing:
        raise ValueError(f"tokens.{', tokens.'.join(missing)} missing")
    try:
        who = identity(tokens["id_token"], tokens["access_token"])
    except TokenError as exc:
        raise ValueError(f"id_token: {exc}") from None
    account_id = tokens.get("account_id") or who.account_id
    if not isinstance(account_id, str):
        raise ValueError("tokens.account_id must be a string")
    for field_name, value in (
        ("tokens.account_id", account_id),
        ("email", who.email),
        ("plan", who.plan),
        ("tokens.access_token", tokens["access_token"]),
        ("tokens.refresh_token", tokens["refresh_token"]),
    ):
        if isinstance(value, str) and control_characters(value):
            raise ValueError(f"{field_name} contains a control character (a line break or NUL)")
    return CodexLogin(
        identity=who.key,
        account_id=account_id,
        email=who.email,
        plan=who.plan,
        tokens=Tokens(tokens["access_token"], tokens["refresh_token"], tokens["id_token"]),
        expires_at=who.expires_at,
        source=str(path),
    )


def read_all(paths: Iterable[Path]) -> tuple[list[CodexLogin], list[ImportProblem]]:
    """Every login found, and every problem; duplicates (same identity) keep the last file."""
    logins: dict[str, CodexLogin] = {}
    problems: list[ImportProblem] = []
    files = auth_files(paths)
    if not files:
        problems.append(
            ImportProblem(Path(" ".join(str(p) for p in paths)), "no auth.json files found")
        )
    for path in files:
        try:
            login = read_auth_file(path)
        except ValueError as exc:
            problems.append(ImportProblem(path, str(exc)))
            continue
        logins[login.identity] = login
    return list(logins.values()), problems


def auth_json(login_tokens: Tokens, account_id: str | None, last_refresh: str) -> bytes:
    """Tokens back in the auth.json shape the Codex CLI reads (`accounts export`)."""
    return orjson.dumps(
        {
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": None,
            "tokens": {
                "id_token": login_tokens.id_token,
                "access_token": login_tokens.access_token,
                "refresh_token": login_tokens.refresh_token,
                "account_id": account_id,
            },
            "last_refresh": last_refresh,
        },
        option=orjson.OPT_INDENT_2,
    )
