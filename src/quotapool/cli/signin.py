"""Signing an account in from the CLI: a ChatGPT account (browser with a callback on
localhost:1455, device code, or a pasted address) or a Claude subscription (callback on
localhost:54545, or a pasted code), through the account's egress."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from quotapool.cli.common import clock, console, fail
from quotapool.domain.credential import Kind

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from quotapool.accounts import oauth
    from quotapool.config import Settings
    from quotapool.net.client import Outbound
    from quotapool.store.accounts import Login


def outbound(proxy: str | None) -> AbstractAsyncContextManager[Outbound]:
    """The way to an auth or profile server, through `proxy` (a URL or "direct")."""
    from quotapool.domain.egress import DIRECT, parse_egress
    from quotapool.net.aiohttp import outbound

    return outbound(parse_egress(proxy) if proxy is not None else DIRECT)


def login_from(tokens: oauth.TokenSet) -> Login:
    from quotapool.accounts.jwt import TokenError, identity
    from quotapool.store.accounts import Login, Tokens

    if not tokens.id_token or not tokens.refresh_token:
        raise fail("the auth server returned no id token or refresh token; try again")
    try:
        who = identity(tokens.id_token, tokens.access_token)
    except TokenError as exc:
        raise fail(f"unreadable id token: {exc}") from None
    return Login(
        who.key,
        who.account_id,
        who.email,
        who.plan,
        Tokens(tokens.access_token, tokens.refresh_token, tokens.id_token),
        who.expires_at,
        "login",
    )


def opener(url: str, browser: bool) -> Callable[[], object]:
    """What opens the sign-in page once the callback listens (nothing with `--no-browser`)."""
    import webbrowser

    return (lambda: webbrowser.open(url)) if browser else (lambda: None)


async def codex_signin(
    auth_base: str, egress: str | None, *, device: bool, manual: bool, browser: bool
) -> oauth.TokenSet:
    """The sign-in; the auth server is reached through the account's egress."""
    import asyncio

    from quotapool.accounts import oauth

    async with outbound(egress) as way:
        if device:
            code = await oauth.device_start(way, auth_base)
            console.print(
                f"Open [bold]{code.verification_url}[/bold] and enter the code [bold]{code.user_code}[/bold]"
            )
            return await oauth.device_wait(way, auth_base, code)
        pkce = oauth.new_pkce()
        url = oauth.authorize_url(auth_base, pkce)
        console.print(f"Sign in at:\n{url}", soft_wrap=True)
        if manual:
            pasted = await asyncio.to_thread(
                typer.prompt,
                "After signing in, paste the address the browser ended on (localhost:1455/…)",
            )
            received = oauth.code_from_redirect(pasted, pkce.state)
        else:
            received = await oauth.wait_for_callback(pkce.state, listening=opener(url, browser))
        return await oauth.exchange_code(way, auth_base, received, pkce.verifier)


async def claude_signin(
    settings: Settings, egress: str | None, *, browser: bool, manual: bool
) -> Login:
    """Claude Code's own sign-in: the browser comes back to localhost:54545 with the code, or
    (`manual`) the page shows a code (`CODE#STATE`) to paste here."""
    import asyncio
    import webbrowser

    from quotapool.accounts import claude_oauth, oauth
    from quotapool.store.accounts import Login, Tokens

    pkce = oauth.new_pkce()
    port = claude_oauth.CALLBACK_PORT
    redirect = claude_oauth.PASTE_URI if manual else claude_oauth.callback_uri(port)
    url = claude_oauth.authorize_url(settings.claude_authorize_url, pkce, redirect)
    console.print(f"Sign in at:\n{url}", soft_wrap=True, markup=False)
    if manual:
        if browser:
            webbrowser.open(url)
        pasted = await asyncio.to_thread(typer.prompt, "Paste the code the page shows")
        code = claude_oauth.code_from_paste(pasted, pkce.state)
    else:
        opened = opener(url, browser)
        code = await oauth.wait_for_callback(pkce.state, port, path="/callback", listening=opened)
    async with outbound(egress) as way:
        auth_base = settings.claude_auth_base_url.rstrip("/")
        tokens = await claude_oauth.exchange_code(way, auth_base, code, pkce, redirect)
        api_base = settings.claude_api_base_url.rstrip("/")
        found = await claude_oauth.profile(way, api_base, tokens.access_token)
    expires = clock.now() + tokens.expires_in if tokens.expires_in is not None else None
    return Login(
        f"claude:{found.uuid}",
        found.uuid,
        found.email,
        found.plan,
        Tokens(tokens.access_token, tokens.refresh_token),
        expires,
        "login",
        Kind.CLAUDE,
    )
