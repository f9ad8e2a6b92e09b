"""Reading credentials files into logins — the Codex CLI's `auth.json`, Claude Code's
`.credentials.json` — every file checked before anything is saved."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from quotapool.accounts.claude_oauth import PLANS, Profile, plan_of
from quotapool.accounts.jwt import TokenError, identity
from quotapool.domain.credential import Kind, control_characters
from quotapool.store.accounts import Login, Tokens

STDIN = Path("-")
"""`quotapool accounts import -`: one file from standard input (how a file reaches a container:
`docker exec -i quotapool quotapool accounts import - < ~/.codex/auth.json`)."""
MAX_STDIN = 1 << 20
"""An auth file is a few KB; more than this on standard input is not one."""


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


def _contents(path: Path) -> bytes:
    if path != STDIN:
        return path.read_bytes()
    data = sys.stdin.buffer.read(MAX_STDIN + 1)
    if len(data) > MAX_STDIN:
        raise ValueError(f"more than {MAX_STDIN} bytes: not an auth file")
    return data


def _source(path: Path) -> str:
    return "standard input" if path == STDIN else str(path)


def read_auth_file(path: Path) -> Login:
    """One auth.json as a login; raises ImportProblem-worthy ValueError with the reason."""
    try:
        data = orjson.loads(_contents(path))
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(claude := data.get("claudeAiOauth"), dict):
        return _claude_login(claude, path)
    if not isinstance(data, dict) or not isinstance(tokens := data.get("tokens"), dict):
        raise ValueError(
            'no "tokens" object (a Codex auth.json) or "claudeAiOauth" object (Claude Code\'s '
            ".credentials.json)"
        )
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
    return Login(
        identity=who.key,
        account_id=account_id,
        email=who.email,
        plan=who.plan,
        tokens=Tokens(tokens["access_token"], tokens["refresh_token"], tokens["id_token"]),
        expires_at=who.expires_at,
        source=_source(path),
    )


def _claude_login(oauth: dict[str, object], path: Path) -> Login:
    """Claude Code's `claudeAiOauth`; who it is comes from the profile endpoint
    (`complete_claude`), before it is saved."""
    access, refresh, expires = (oauth.get(k) for k in ("accessToken", "refreshToken", "expiresAt"))
    if not isinstance(access, str) or not access:
        raise ValueError("claudeAiOauth.accessToken missing")
    if refresh is not None and not isinstance(refresh, str):
        raise ValueError("claudeAiOauth.refreshToken must be a string")
    for field_name, value in (("accessToken", access), ("refreshToken", refresh)):
        if isinstance(value, str) and control_characters(value):
            raise ValueError(f"claudeAiOauth.{field_name} contains a control character")
    return Login(
        identity="",
        account_id="",
        email=None,
        plan=plan_of(oauth.get("rateLimitTier"), oauth.get("subscriptionType")),
        tokens=Tokens(access, refresh or None),
        expires_at=expires / 1000.0 if isinstance(expires, int | float) else None,
        source=_source(path),
        kind=Kind.CLAUDE,
    )


def with_profile(login: Login, profile: Profile) -> Login:
    """A Claude login named by its profile (its plan too, when the file did not say)."""
    return replace(
        login,
        identity=f"claude:{profile.uuid}",
        account_id=profile.uuid,
        email=profile.email,
        plan=profile.plan or login.plan,
    )


def read_all(paths: Iterable[Path]) -> tuple[list[Login], list[ImportProblem]]:
    """Every login found, and every problem; duplicates (same identity) keep the last file."""
    logins: dict[str, Login] = {}
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
        logins[login.identity or login.source] = login  # (a Claude login is named later)
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


_TIERS = {plan: tier for tier, plan in PLANS.items() if tier.startswith("default_")}
"""A plan → Claude Code's `rateLimitTier` for it (the tiers `PLANS` reads, the other way)."""


def credentials_json(login_tokens: Tokens, expires_at: float | None, plan: str | None) -> bytes:
    """A Claude login back in the `.credentials.json` shape Claude Code reads (`accounts
    export`): its `claudeAiOauth`."""
    oauth: dict[str, object] = {
        "accessToken": login_tokens.access_token,
        "refreshToken": login_tokens.refresh_token,
        "expiresAt": int(expires_at * 1000) if expires_at is not None else None,
        "scopes": ["user:inference", "user:profile"],
    }
    if plan is not None:
        oauth["subscriptionType"] = "pro" if plan == "claude_pro" else "max"
        if plan in _TIERS:
            oauth["rateLimitTier"] = _TIERS[plan]
    return orjson.dumps({"claudeAiOauth": oauth}, option=orjson.OPT_INDENT_2)
