"""Claims of the ChatGPT id/access tokens (read, not verified: the upstream verifies them)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

AUTH_CLAIM = "https://api.openai.com/auth"
PROFILE_CLAIM = "https://api.openai.com/profile"


class TokenError(ValueError):
    """A token is not a readable JWT."""


def claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a JWT (expected three dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data = orjson.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise TokenError("the JWT payload is not base64url JSON") from None
    if not isinstance(data, dict):
        raise TokenError("the JWT payload is not an object")
    return data


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a ChatGPT login is: the account (workspace/seat) and the user in it."""

    account_id: str
    user_id: str | None
    email: str | None
    plan: str | None
    expires_at: float | None

    @property
    def key(self) -> str:
        """Unique per login: the same email in two workspaces is two accounts."""
        return f"{self.account_id}:{self.user_id or ''}"


def identity(id_token: str, access_token: str | None = None) -> Identity:
    """Identity from the id token's claims (the access token's expiry when given)."""
    data = claims(id_token)
    auth = data.get(AUTH_CLAIM) or {}
    profile = data.get(PROFILE_CLAIM) or {}
    account_id = auth.get("chatgpt_account_id")
    if not account_id:
        raise TokenError(f"the id token has no {AUTH_CLAIM}.chatgpt_account_id claim")
    expiry = claims(access_token).get("exp") if access_token else data.get("exp")
    return Identity(
        account_id=str(account_id),
        user_id=auth.get("chatgpt_user_id") or auth.get("user_id"),
        email=data.get("email") or profile.get("email"),
        plan=auth.get("chatgpt_plan_type"),
        expires_at=float(expiry) if isinstance(expiry, int | float) else None,
    )
