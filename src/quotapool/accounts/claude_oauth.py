"""Claude subscriptions' OAuth (the flow Claude Code itself uses): PKCE sign-in, token refresh,
and the profile that names the account and its plan.

The endpoints, client id and body shapes are those of Claude Code (as CLIProxyAPI and
better-ccflare use them): JSON bodies to `{auth_base}/v1/oauth/token`; the profile and usage at
`{api_base}/api/oauth/…` with the OAuth beta flag. Every base URL is a setting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from quotapool.accounts.oauth import REAUTH_ERRORS, OAuthError, Pkce, code_from_redirect
from quotapool.net.client import JSON_CALL_ERRORS, Outbound, read_json
from quotapool.secrets import MIN_SECRET_LENGTH, REDACTED
from quotapool.upstream.anthropic import OAUTH_BETA

CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
SCOPES = "org:create_api_key user:profile user:inference"
PASTE_URI = "https://console.anthropic.com/oauth/code/callback"
"""Where the sign-in page shows the code to paste (`CODE#STATE`): headless machines."""
CALLBACK_PORT = 54545
"""Claude Code's own port for the browser's redirect back to this machine."""


def callback_uri(port: int = CALLBACK_PORT) -> str:
    return f"http://localhost:{port}/callback"


PLANS = {
    "default_claude_max_20x": "claude_max_20x",
    "default_claude_max_5x": "claude_max_5x",
    "claude_max": "claude_max_5x",
    "max": "claude_max_5x",
    "claude_pro": "claude_pro",
    "pro": "claude_pro",
}
"""A rate-limit tier or subscription type → the plan in the capacity table."""


@dataclass(frozen=True, slots=True)
class ClaudeTokens:
    access_token: str
    refresh_token: str | None
    """None when the server sent none (keep the one there is)."""
    expires_in: float | None
    """Seconds the access token lives from now."""

    def __repr__(self) -> str:
        return "ClaudeTokens(***)"


@dataclass(frozen=True, slots=True)
class Profile:
    uuid: str
    email: str | None
    plan: str | None


def authorize_url(authorize: str, pkce: Pkce, redirect_uri: str = PASTE_URI) -> str:
    """The sign-in page (`authorize`: `https://claude.ai/oauth/authorize`), which sends the
    browser on to `redirect_uri` with the code (or shows it, for `PASTE_URI`)."""
    query = {
        "code": "true",
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": SCOPES,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": pkce.state,
    }
    return f"{authorize}?{urlencode(query)}"


def plan_of(*names: object) -> str | None:
    """The first name that is a known tier or subscription type, as a plan."""
    for name in names:
        if isinstance(name, str) and (plan := PLANS.get(name.lower())) is not None:
            return plan
    return None


async def _token(way: Outbound, auth_base: str, body: dict[str, str]) -> ClaudeTokens:
    try:
        async with way.post_json(
            f"{auth_base}/v1/oauth/token", body, {"accept": "application/json"}
        ) as response:
            status, retry_after = response.status, response.headers.get("retry-after")
            payload: Any = await read_json(response)
    except JSON_CALL_ERRORS as exc:
        reason = str(exc) if "egress" in str(exc) else type(exc).__name__
        raise OAuthError(f"token endpoint unreachable or unreadable: {reason}") from None
    if status != 200 or not isinstance(payload, dict) or "access_token" not in payload:
        error = payload.get("error") if isinstance(payload, dict) else None
        code = error.get("type") if isinstance(error, dict) else error
        description = payload.get("error_description") if isinstance(payload, dict) else None
        if isinstance(description, str):  # an auth server may echo what it was sent
            for field in ("refresh_token", "code", "code_verifier"):
                if len(value := body.get(field, "")) >= MIN_SECRET_LENGTH:
                    description = description.replace(value, REDACTED)
        code = code[:100] if isinstance(code, str) else None
        message = f"token endpoint answered {status}: {code or 'error'}" + (
            f" ({description[:200]})" if isinstance(description, str) else ""
        )
        failure = OAuthError(message, code, permanent=code in REAUTH_ERRORS)
        failure.retry_after = retry_after if status == 429 else None
        raise failure
    expires_in = payload.get("expires_in")
    return ClaudeTokens(
        payload["access_token"],
        payload.get("refresh_token") or None,
        float(expires_in) if isinstance(expires_in, int | float) else None,
    )


async def refresh(way: Outbound, auth_base: str, refresh_token: str) -> ClaudeTokens:
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLIENT_ID}
    return await _token(way, auth_base, body)


def code_from_paste(pasted: str, state: str) -> str:
    """The code from what the sign-in page showed (`CODE#STATE`), or from the address a
    browser ended on (`localhost:54545/callback?code=…`)."""
    if "code=" in pasted:
        return code_from_redirect(pasted, state)
    code, _, sent_state = pasted.strip().partition("#")
    if sent_state and sent_state != state:
        raise OAuthError("the pasted code is from another sign-in (state mismatch); start again")
    if not code:
        raise OAuthError("nothing was pasted")
    return code


async def exchange_code(
    way: Outbound,
    auth_base: str,
    code: str,
    pkce: Pkce,
    redirect_uri: str = PASTE_URI,
) -> ClaudeTokens:
    """Trade the sign-in's code for tokens (`redirect_uri` as the sign-in page was given)."""
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "state": pkce.state,
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri,
        "code_verifier": pkce.verifier,
    }
    return await _token(way, auth_base, body)


def oauth_headers(access_token: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {access_token}",
        "anthropic-beta": OAUTH_BETA,
        "accept": "application/json",
    }


async def profile(way: Outbound, api_base: str, access_token: str) -> Profile:
    """Who the token belongs to, and the plan."""
    try:
        async with way.get(
            f"{api_base}/api/oauth/profile", oauth_headers(access_token)
        ) as response:
            status = response.status
            payload: Any = await read_json(response)
    except JSON_CALL_ERRORS as exc:
        reason = str(exc) if "egress" in str(exc) else type(exc).__name__
        raise OAuthError(f"the profile endpoint is unreachable: {reason}") from None
    account = payload.get("account") if isinstance(payload, dict) else None
    if status != 200 or not isinstance(account, dict) or not account.get("uuid"):
        raise OAuthError(f"the profile endpoint answered {status}; is the token valid?")
    organization = payload.get("organization") or {}
    subscription = (
        "max" if account.get("has_claude_max") else "pro" if account.get("has_claude_pro") else None
    )
    plan = plan_of(
        organization.get("rate_limit_tier"), organization.get("organization_type"), subscription
    )
    email = account.get("email") or account.get("email_address")
    return Profile(str(account["uuid"]), email if isinstance(email, str) else None, plan)
