"""Accounts from the database as pool credentials, secrets and token states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from quotapool.accounts.refresh import TokenState
from quotapool.domain.credential import Credential, Kind, Policy
from quotapool.domain.egress import DIRECT, Egress, parse_egress
from quotapool.domain.state import Status
from quotapool.secrets import Secret, SecretBox
from quotapool.store.accounts import AccountRow


@dataclass(frozen=True, slots=True)
class LoadedAccount:
    credential: Credential
    secret: Secret
    status: Status
    status_reason: str
    tokens: TokenState | None
    """Codex accounts: what the refresher needs."""


def load(
    rows: Sequence[AccountRow],
    box: SecretBox,
    codex_base_url: str,
    default: Egress = DIRECT,
    claude_base_url: str = "https://api.anthropic.com",
) -> list[LoadedAccount]:
    """Decrypt and map each row (raises KeyFileError if the key does not fit). `default`: the
    egress of accounts without their own."""
    bases = {Kind.CODEX: codex_base_url, Kind.CLAUDE: claude_base_url}
    loaded = []
    for row in rows:
        tokens = row.tokens(box)
        own = row.proxy(box)
        egress = default if own is None else parse_egress(own)
        credential = Credential(
            id=row.id,
            name=row.name,
            kind=row.kind,
            base_url=(row.base_url or bases.get(row.kind, "")).rstrip("/"),
            models=frozenset(row.models),
            weight=row.weight,
            priority=row.priority,
            plan=row.plan,
            policy=Policy(row.policy),
            account_id=row.account_id if row.kind is Kind.CODEX else None,
            egress=egress.label,
        )
        if row.kind is Kind.CODEX:
            secret = Secret(tokens.access_token or "", row.account_id, egress)
            state = TokenState(row.id, tokens, row.expires_at, row.account_id)
        elif row.kind is Kind.CLAUDE and tokens.access_token:  # (a setup-token: an api_key)
            secret = Secret(tokens.access_token, egress=egress)
            state = TokenState(row.id, tokens, row.expires_at, None, kind=Kind.CLAUDE)
        else:
            secret, state = Secret(tokens.api_key or "", egress=egress), None
        loaded.append(
            LoadedAccount(credential, secret, Status(row.status), row.status_reason or "", state)
        )
    return loaded
