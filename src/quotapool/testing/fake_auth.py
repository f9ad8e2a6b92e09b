"""The fake ChatGPT auth server: token refresh, browser (PKCE) and device-code logins."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from typing import Any

from aiohttp import web

from quotapool.clock import Clock
from quotapool.testing.fake_model import AUTH, Account, fake_jwt

REUSED = (
    "Your refresh token has already been used to generate a new access token. "
    "Please try signing in again."
)


class FakeAuth:
    """Issues JWT-shaped tokens for fake accounts and answers the OAuth endpoints.

    `accounts` is the upstream's token → account map: every access token issued here works
    there at once."""

    def __init__(self, accounts: dict[str, Account], clock: Clock) -> None:
        self.accounts = accounts
        self.clock = clock
        self.refresh_tokens: dict[str, Account] = {}
        self.used_refresh_tokens: set[str] = set()
        self.codes: dict[str, tuple[Account, str | None]] = {}
        """Authorization code → (account, PKCE challenge)."""
        self.devices: dict[str, Account | None] = {}
        """Device user code → the account that approved it (None while pending)."""
        self.login_as: Account | None = None
        """The account a browser or device login signs in as."""

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/oauth/token", self._oauth_token)
        router.add_get("/oauth/authorize", self._oauth_authorize)
        router.add_post("/api/accounts/deviceauth/usercode", self._device_usercode)
        router.add_post("/api/accounts/deviceauth/token", self._device_token)

    def issue_tokens(
        self, account: Account, ttl: float = 3600.0, *, email: str | None = None, plan: str = "plus"
    ) -> dict[str, str]:
        """Fresh id/access/refresh tokens (JWT-shaped) for `account`; the access token works at once."""
        now = int(self.clock.now())
        auth = {
            "chatgpt_account_id": account.account_id,
            "chatgpt_plan_type": plan,
            "chatgpt_user_id": f"user-{account.name}",
        }
        email = email or f"{account.name}@example.com"
        id_token = fake_jwt({"email": email, "exp": now + 3600, AUTH: auth})
        access = fake_jwt({"exp": now + ttl, "jti": uuid.uuid4().hex, AUTH: auth})
        refresh = f"rt_{uuid.uuid4().hex}"
        self.accounts[access] = account
        self.refresh_tokens[refresh] = account
        account.token = access
        return {
            "id_token": id_token,
            "access_token": access,
            "refresh_token": refresh,
            "account_id": account.account_id or "",
        }

    def auth_json(self, account: Account, ttl: float = 3600.0, **identity: str) -> dict[str, Any]:
        """A Codex `auth.json` for `account`, as `codex login` writes it."""
        return {
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": None,
            "tokens": self.issue_tokens(account, ttl, **identity),
            "last_refresh": "2026-11-22T00:00:00Z",
        }

    async def _oauth_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "refresh_token":
            sent = str(form.get("refresh_token"))
            if sent in self.used_refresh_tokens:  # single use, as at auth.openai.com
                return web.json_response(
                    {"error": {"message": REUSED, "type": "invalid_request_error",
                               "param": None, "code": "refresh_token_reused"}},
                    status=401,
                )  # fmt: skip
            account = self.refresh_tokens.get(sent)
            if account is None:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "unknown refresh token"},
                    status=400,
                )
            account.refreshes += 1
            if not account.refresh_error:  # used up at once: a second refresh meanwhile fails
                del self.refresh_tokens[sent]
                self.used_refresh_tokens.add(sent)
            if account.refresh_delay:
                await asyncio.sleep(account.refresh_delay)
            if account.refresh_error:
                # Careless auth servers echo what they were sent: quotapool must not log it.
                echo = "refresh token " + str(form.get("refresh_token")) + " refused"
                return web.json_response(
                    {"error": account.refresh_error, "error_description": echo},
                    status=400 if account.refresh_error == "invalid_grant" else 500,
                )
            tokens = self.issue_tokens(account)
            return web.json_response({**tokens, "token_type": "Bearer", "expires_in": 3600})
        if grant == "authorization_code":
            found = self.codes.pop(str(form.get("code")), None)
            if found is None:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "unknown code"}, status=400
                )
            account, challenge = found
            verifier = str(form.get("code_verifier", ""))
            digest = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if challenge is not None and digest != challenge:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "PKCE mismatch"}, status=400
                )
            return web.json_response(
                {**self.issue_tokens(account), "token_type": "Bearer", "expires_in": 3600}
            )
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def _oauth_authorize(self, request: web.Request) -> web.Response:
        """Signs in as `login_as` at once and redirects back, like a user clicking through."""
        if self.login_as is None:
            return web.Response(status=400, text="no fake login configured")
        code = uuid.uuid4().hex
        self.codes[code] = (self.login_as, request.query.get("code_challenge"))
        target = (
            f"{request.query['redirect_uri']}?code={code}&state={request.query.get('state', '')}"
        )
        raise web.HTTPFound(target)

    async def _device_usercode(self, request: web.Request) -> web.Response:
        user_code = f"{uuid.uuid4().hex[:4]}-{uuid.uuid4().hex[:4]}".upper()
        self.devices[user_code] = None
        return web.json_response(
            {"device_auth_id": f"dev_{user_code}", "user_code": user_code, "interval": "0.2"}
        )

    async def _device_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        account = self.devices.get(body.get("user_code")) or self.login_as
        if account is None:
            return web.json_response({"error": "authorization_pending"}, status=403)
        verifier = uuid.uuid4().hex
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        code = uuid.uuid4().hex
        self.codes[code] = (account, challenge)
        return web.json_response(
            {"authorization_code": code, "code_challenge": challenge, "code_verifier": verifier}
        )
