"""The fake Claude OAuth server and the subscription endpoints beside the Messages API: token
(JSON bodies, PKCE, refresh with rotation), profile and usage — as strict as the real ones:
the profile and usage need the OAuth beta flag, a used refresh token is refused, an expired
access token is refused everywhere."""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from quotapool.clock import Clock
from quotapool.testing.fake_model import Account

CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
OAUTH_BETA = "oauth-2025-04-20"
PASTE_URI = "https://console.anthropic.com/oauth/code/callback"
LOOPBACK_CALLBACK = re.compile(r"http://localhost:\d+/callback")
"""The redirects registered for Claude Code's client: the page that shows the code, or a
port on the user's own machine."""


@dataclass
class ClaudeSide:
    """How the fake's Claude subscriptions sign in and renew."""

    accounts: dict[str, Account]
    """The upstream's token → account map: an access token issued here works there at once."""
    clock: Clock
    expires: dict[str, float] = field(default_factory=dict)
    """Access token → when it stops working."""
    refresh_tokens: dict[str, Account] = field(default_factory=dict)
    used_refresh_tokens: set[str] = field(default_factory=set)
    codes: dict[str, tuple[Account, str, str, str]] = field(default_factory=dict)
    """Code → (account, PKCE challenge, state, redirect URI)."""
    login_as: Account | None = None
    tiers: dict[str, str] = field(default_factory=dict)
    """Account name → its rate-limit tier (default: Max 5×)."""
    refresh_status: int | None = None
    """Answer refreshes with this status (429: with Retry-After) until cleared."""
    omit_refresh_token: bool = False
    """Renew without sending a new refresh token (the old one stays valid)."""

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/oauth/token", self._token)
        router.add_get("/claude/oauth/authorize", self._authorize)
        router.add_get("/api/oauth/profile", self._profile)
        router.add_get("/api/oauth/usage", self._usage)

    def issue(self, account: Account, ttl: float = 28800.0) -> dict[str, Any]:
        access = f"sk-ant-oat01-{uuid.uuid4().hex}"
        refresh = f"sk-ant-ort01-{uuid.uuid4().hex}"
        self.accounts[access] = account
        self.expires[access] = self.clock.now() + ttl
        self.refresh_tokens[refresh] = account
        account.token = access
        return {"access_token": access, "refresh_token": refresh, "expires_in": int(ttl)}

    def credentials_json(self, account: Account, ttl: float = 28800.0) -> dict[str, Any]:
        """Claude Code's `~/.claude/.credentials.json` for `account`."""
        tokens = self.issue(account, ttl)
        return {
            "claudeAiOauth": {
                "accessToken": tokens["access_token"],
                "refreshToken": tokens["refresh_token"],
                "expiresAt": int((self.clock.now() + ttl) * 1000),
                "scopes": ["user:inference", "user:profile"],
                "subscriptionType": "max",
                "rateLimitTier": self.tiers.get(account.name, "default_claude_max_5x"),
            }
        }

    def expired(self, token: str) -> bool:
        return token in self.expires and self.expires[token] <= self.clock.now()

    async def _token(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_request_error", "the body must be JSON")
        if not isinstance(body, dict) or body.get("client_id") != CLIENT_ID:
            return _error(400, "invalid_client", "unknown client_id")
        grant = body.get("grant_type")
        if grant == "refresh_token":
            return await self._refresh(str(body.get("refresh_token")))
        if grant == "authorization_code":
            found = self.codes.pop(str(body.get("code")), None)
            if found is None:
                return _error(400, "invalid_grant", "unknown code")
            account, challenge, state, redirect = found
            if body.get("redirect_uri") != redirect:
                return _error(400, "invalid_grant", "redirect_uri does not match the sign-in's")
            verifier = str(body.get("code_verifier", ""))
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
                return _error(400, "invalid_grant", "PKCE mismatch")
            if body.get("state") != state:
                return _error(400, "invalid_grant", "state mismatch")
            return web.json_response({**self.issue(account), "token_type": "Bearer"})
        return _error(400, "unsupported_grant_type", str(grant))

    async def _refresh(self, sent: str) -> web.Response:
        if self.refresh_status is not None:
            headers = {"retry-after": "120"} if self.refresh_status == 429 else {}
            return _error(self.refresh_status, "rate_limit_error", "slow down", headers)
        if sent in self.used_refresh_tokens:
            return _error(400, "invalid_grant", "refresh token already used")
        account = self.refresh_tokens.get(sent)
        if account is None:
            return _error(400, "invalid_grant", "unknown refresh token")
        account.refreshes += 1
        tokens = self.issue(account)
        if self.omit_refresh_token:
            self.refresh_tokens.pop(tokens.pop("refresh_token"))
        else:  # rotated: the one sent is used up
            del self.refresh_tokens[sent]
            self.used_refresh_tokens.add(sent)
        return web.json_response({**tokens, "token_type": "Bearer"})

    async def _authorize(self, request: web.Request) -> web.Response:
        """The sign-in page, signed in as `login_as`: it shows the code to paste, or sends the
        browser back to the user's machine with it."""
        query = request.query
        redirect = query.get("redirect_uri", "")
        if self.login_as is None or query.get("client_id") != CLIENT_ID:
            return web.Response(status=400, text="no fake login configured")
        if redirect != PASTE_URI and not LOOPBACK_CALLBACK.fullmatch(redirect):
            return web.Response(status=400, text="redirect_uri is not registered for this client")
        code, state = uuid.uuid4().hex, query.get("state", "")
        self.codes[code] = (self.login_as, query.get("code_challenge", ""), state, redirect)
        if redirect == PASTE_URI:
            return web.Response(text=f"{code}#{state}")
        raise web.HTTPFound(f"{redirect}?{urlencode({'code': code, 'state': state})}")

    def _bearer(self, request: web.Request) -> Account:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        account = self.accounts.get(token)
        if account is None or not account.claude or self.expired(token):
            raise _raised(401, "authentication_error", "invalid bearer token")
        betas = {b.strip() for b in request.headers.get("anthropic-beta", "").split(",")}
        if OAUTH_BETA not in betas:
            raise _raised(
                401, "authentication_error", "OAuth authentication is currently not supported."
            )
        return account

    async def _profile(self, request: web.Request) -> web.Response:
        account = self._bearer(request)
        tier = self.tiers.get(account.name, "default_claude_max_5x")
        return web.json_response(
            {
                "account": {
                    "uuid": f"uuid-{account.name}",
                    "email": f"{account.name}@example.com",
                    "full_name": account.name,
                    "has_claude_max": "max" in tier,
                    "has_claude_pro": "max" not in tier,
                },
                "organization": {
                    "uuid": f"org-{account.name}",
                    "organization_type": "claude_max" if "max" in tier else "claude_pro",
                    "rate_limit_tier": tier,
                },
            }
        )

    async def _usage(self, request: web.Request) -> web.Response:
        account = self._bearer(request)
        account.usage_polls += 1
        start = int(account.windows_start)
        return web.json_response(
            {
                "five_hour": {"utilization": account.primary_used, "resets_at": _iso(start + 3600)},
                "seven_day": {
                    "utilization": account.secondary_used,
                    "resets_at": _iso(start + 86400 * 3),
                },
                "seven_day_opus": None,
                "extra_usage": {"is_enabled": False},
            }
        )


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at))


def _error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    if kind.startswith("invalid_") or kind == "unsupported_grant_type":
        body = {"error": kind, "error_description": message}
    return web.json_response(body, status=status, headers=headers)


def _raised(status: int, kind: str, message: str) -> web.HTTPException:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.HTTPUnauthorized(text=orjson.dumps(body).decode(), content_type="application/json")
