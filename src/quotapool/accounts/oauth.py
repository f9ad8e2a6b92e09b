"""The ChatGPT OAuth flows the Codex CLI uses: PKCE in a browser, device code, refresh."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from aiohttp import web

from quotapool.net.client import JSON_CALL_ERRORS, Outbound, read_json
from quotapool.secrets import MIN_SECRET_LENGTH, REDACTED

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
"""The Codex CLI's public client id."""
CALLBACK_PORT = 1455
REDIRECT_URI = f"http://localhost:{CALLBACK_PORT}/auth/callback"
SCOPE = "openid profile email offline_access"
REAUTH_ERRORS = frozenset(
    {"invalid_grant", "refresh_token_expired", "refresh_token_reused", "refresh_token_invalidated"}
)


class OAuthError(Exception):
    """The auth server refused or failed; `code` is its error code when it gave one."""

    def __init__(self, message: str, code: str | None = None, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent
        """True when only a new login helps (invalid_grant and friends)."""
        self.retry_after: str | None = None
        """A 429's `Retry-After`, as sent."""


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    id_token: str | None

    def __repr__(self) -> str:
        return "TokenSet(***)"


@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str
    state: str


def new_pkce() -> Pkce:
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return Pkce(verifier, challenge, secrets.token_urlsafe(24))


def authorize_url(auth_base: str, pkce: Pkce, redirect_uri: str = REDIRECT_URI) -> str:
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": pkce.state,
        "id_token_add_organizations": "true",
        "codex_cli_simplified_flow": "true",
        "prompt": "login",
    }
    return f"{auth_base}/oauth/authorize?{urlencode(query)}"


def code_from_redirect(pasted: str, state: str) -> str:
    """The authorization code from a pasted redirect URL (or the bare code)."""
    pasted = pasted.strip()
    if "://" not in pasted and "code=" not in pasted:
        if not pasted:
            raise OAuthError("nothing was pasted")
        return pasted
    query = parse_qs(urlparse(pasted).query if "://" in pasted else pasted)
    if "error" in query:
        raise OAuthError(f"the login failed: {query['error'][0]}", query["error"][0])
    if query.get("state", [state])[0] != state:
        raise OAuthError(
            "the pasted URL belongs to another login attempt (state mismatch); start again"
        )
    if not query.get("code"):
        raise OAuthError(
            "the pasted URL has no ?code=…; paste the whole address the browser ended on"
        )
    return query["code"][0]


async def _token_request(way: Outbound, auth_base: str, form: dict[str, str]) -> TokenSet:
    try:
        form_type = {"content-type": "application/x-www-form-urlencoded"}
        body = urlencode(form).encode()
        async with way.post(f"{auth_base}/oauth/token", body, form_type) as response:
            payload: Any = await read_json(response)
            status = response.status
    except JSON_CALL_ERRORS as exc:
        raise OAuthError(
            f"token endpoint unreachable or unreadable: {type(exc).__name__}"
        ) from None
    if status != 200 or not isinstance(payload, dict) or "access_token" not in payload:
        error = payload.get("error") if isinstance(payload, dict) else None
        code = error.get("code") if isinstance(error, dict) else error
        description = payload.get("error_description") if isinstance(payload, dict) else None
        if isinstance(description, str):  # an auth server may echo what it was sent
            for field in ("refresh_token", "code", "code_verifier"):
                if len(value := form.get(field, "")) >= MIN_SECRET_LENGTH:
                    description = description.replace(value, REDACTED)
        if isinstance(code, str):
            code = code[:100]
        message = f"token endpoint answered {status}: {code or 'error'}" + (
            f" ({description})" if description else ""
        )
        raise OAuthError(message, code, permanent=code in REAUTH_ERRORS)
    return TokenSet(payload["access_token"], payload.get("refresh_token"), payload.get("id_token"))


async def refresh(way: Outbound, auth_base: str, refresh_token: str) -> TokenSet:
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "refresh_token": refresh_token,
        "scope": "openid profile email",
    }
    return await _token_request(way, auth_base, form)


async def exchange_code(
    way: Outbound,
    auth_base: str,
    code: str,
    verifier: str,
    redirect_uri: str = REDIRECT_URI,
) -> TokenSet:
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": redirect_uri,
    }
    return await _token_request(way, auth_base, form)


async def wait_for_callback(
    state: str,
    port: int = CALLBACK_PORT,
    timeout: float = 300.0,
    path: str = "/auth/callback",
    listening: Callable[[], object] = lambda: None,
) -> str:
    """Serve `http://localhost:{port}{path}` until the browser lands there with a code
    (`listening` is called once it can: open the browser there)."""
    arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def callback(request: web.Request) -> web.Response:
        try:
            code = code_from_redirect(str(request.url), state)
        except OAuthError as exc:
            if not arrived.done():
                arrived.set_exception(exc)
            return web.Response(text=f"quotapool: login failed: {exc}", status=400)
        if not arrived.done():
            arrived.set_result(code)
        return web.Response(text="quotapool: login complete, you can close this tab.")

    app = web.Application()
    app.router.add_get(path, callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OAuthError(
            f"port {port} is busy ({exc.strerror}); use --manual and paste the redirect URL"
        ) from None
    try:
        listening()
        return await asyncio.wait_for(arrived, timeout)
    except TimeoutError:
        raise OAuthError(
            f"no browser callback within {timeout:.0f} s; on a machine without a browser, "
            "use --manual"
        ) from None
    finally:
        await runner.cleanup()


@dataclass(frozen=True, slots=True)
class DeviceCode:
    device_auth_id: str
    user_code: str
    interval: float
    verification_url: str


async def device_start(way: Outbound, auth_base: str) -> DeviceCode:
    try:
        async with way.post_json(
            f"{auth_base}/api/accounts/deviceauth/usercode", {"client_id": CLIENT_ID}
        ) as response:
            payload: Any = await read_json(response)
            status = response.status
    except JSON_CALL_ERRORS as exc:
        raise OAuthError(f"device login unavailable: {type(exc).__name__}") from None
    if status != 200 or not isinstance(payload, dict) or "device_auth_id" not in payload:
        raise OAuthError(f"device login refused ({status}); use the browser login or --manual")
    return DeviceCode(
        payload["device_auth_id"],
        payload["user_code"],
        float(payload.get("interval") or 5),
        f"{auth_base}/codex/device",
    )


async def device_wait(
    way: Outbound,
    auth_base: str,
    device: DeviceCode,
    *,
    timeout: float = 900.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> TokenSet:
    """Poll until the user entered the code, then exchange the authorization it yields."""
    body = {"device_auth_id": device.device_auth_id, "user_code": device.user_code}
    waited = 0.0
    while waited < timeout:
        async with way.post_json(f"{auth_base}/api/accounts/deviceauth/token", body) as response:
            if response.status == 200:
                grant: Any = await read_json(response)
                return await exchange_code(
                    way,
                    auth_base,
                    grant["authorization_code"],
                    grant["code_verifier"],
                    f"{auth_base}/deviceauth/callback",
                )
            if response.status not in (403, 404):  # 403/404: not entered yet
                raise OAuthError(f"device login failed ({response.status})")
        await sleep(device.interval)
        waited += device.interval
    raise OAuthError(f"the code was not entered within {timeout:.0f} s")
