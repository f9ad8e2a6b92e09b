"""ChatGPT accounts on the Codex backend: `{base}/codex/responses`, always streamed."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from quotapool.domain.api import Api
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.quota import QuotaReading
from quotapool.domain.request import Route
from quotapool.jsonlazy import plain
from quotapool.secrets import Secret
from quotapool.translate import CODEX_ACCOUNTS, refuse, unsupported, without
from quotapool.translate.table import CODEX_RESPONSES_REFUSED
from quotapool.upstream.base import ClientRequest, Relay, UpstreamCall, translated_call
from quotapool.upstream.headers import forwarded
from quotapool.upstream.signals import parse_codex_headers


def codex_auth(secret: Secret, headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The client `headers` the Codex backend may see, with the account's credentials: its
    access token and ChatGPT account id."""
    merged = forwarded(headers, Kind.CODEX) if headers else {}
    merged["authorization"] = f"Bearer {secret.token}"
    if secret.account_id:
        merged["chatgpt-account-id"] = secret.account_id
    return merged


def codex_url(credential: Credential) -> str:
    """Where an account's turns go: over HTTP (a POST streamed back) or as a WebSocket."""
    return f"{credential.base_url}/codex/responses"


class CodexTransport:
    kind = Kind.CODEX

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient
        """Drop what the backend cannot honour (named in a header) instead of a 400."""

    def prepare(
        self, request: ClientRequest, credential: Credential, secret: Secret
    ) -> UpstreamCall:
        headers = codex_auth(secret, request.headers)
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream"
        url = codex_url(credential)
        if request.route is Route.COMPACT:
            return UpstreamCall(f"{url}/compact", headers, request.body, Relay.PASSTHROUGH)
        if request.route in (Route.CHAT, Route.MESSAGES, Route.GEMINI):
            session = request.headers.get("x-claude-code-session-id")
            if session:  # the backend keeps a conversation's prompt cache by its session
                headers["session_id"] = session
            return translated_call(
                url, headers, request, Api.CODEX, lenient=self.lenient, session=session
            )
        payload = request.payload
        dropped: tuple[str, ...] = ()
        if self.lenient:
            dropped = tuple(unsupported(payload, CODEX_RESPONSES_REFUSED))
            payload = without(plain(payload), list(dropped))
        refuse(payload, CODEX_RESPONSES_REFUSED, CODEX_ACCOUNTS)
        if payload.get("store") is True:  # the backend never stores (quotapool keeps the turns)
            dropped += ("store",)
        if not dropped and payload.get("stream") is True and payload.get("store") is False:
            return UpstreamCall(url, headers, request.body, Relay.PASSTHROUGH)
        # The Codex backend only streams and never stores: ask for that, adapt the answer.
        body = orjson.dumps({**plain(payload), "stream": True, "store": False})
        relay = Relay.PASSTHROUGH if request.stream else Relay.RESPONSES_FROM_STREAM
        return UpstreamCall(url, headers, body, relay, dropped=dropped)

    def quota(self, headers: Mapping[str, str], now: float) -> QuotaReading | None:
        return parse_codex_headers(headers, now)
