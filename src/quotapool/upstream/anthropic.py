"""Anthropic API keys and Claude subscriptions: `/v1/messages` (and its `count_tokens`) pass
through with `x-api-key` (a subscription: its OAuth token); chat and Responses clients are
translated onto it."""

from __future__ import annotations

from collections.abc import Mapping

from quotapool.domain.api import Api
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.quota import QuotaReading
from quotapool.domain.request import Route
from quotapool.secrets import Secret
from quotapool.upstream.base import ClientRequest, Relay, UpstreamCall, translated_call
from quotapool.upstream.headers import forwarded
from quotapool.upstream.signals import parse_anthropic_headers


class AnthropicTransport:
    kind = Kind.ANTHROPIC

    def __init__(self, default_version: str, lenient: bool = False) -> None:
        self.default_version = default_version
        self.lenient = lenient

    def authenticate(self, headers: dict[str, str], secret: Secret) -> None:
        headers["x-api-key"] = secret.token

    def prepare(
        self, request: ClientRequest, credential: Credential, secret: Secret
    ) -> UpstreamCall:
        headers = forwarded(request.headers, self.kind)
        self.authenticate(headers, secret)
        headers.setdefault("anthropic-version", self.default_version)
        headers["content-type"] = "application/json"
        if request.route in (Route.CHAT, Route.RESPONSES, Route.GEMINI):
            url = f"{credential.base_url}/v1/messages"
            return translated_call(url, headers, request, Api.MESSAGES, lenient=self.lenient)
        path = (
            "/v1/messages/count_tokens" if request.route is Route.COUNT_TOKENS else "/v1/messages"
        )
        query = upstream_query(request.query)
        url = f"{credential.base_url}{path}" + (f"?{query}" if query else "")
        return UpstreamCall(url, headers, request.body, Relay.PASSTHROUGH)

    def quota(self, headers: Mapping[str, str], now: float) -> QuotaReading | None:
        return parse_anthropic_headers(headers, now)


OAUTH_BETA = "oauth-2025-04-20"
"""The beta flag the Messages API wants with a subscription's OAuth token (without it: 401
"OAuth authentication is currently not supported")."""


class ClaudeTransport(AnthropicTransport):
    """Claude subscriptions: the same Messages API, authenticated by the account's OAuth token
    (a bearer token with the OAuth beta flag); Claude Code's requests otherwise unchanged."""

    kind = Kind.CLAUDE

    def authenticate(self, headers: dict[str, str], secret: Secret) -> None:
        headers["authorization"] = f"Bearer {secret.token}"
        headers["anthropic-beta"] = with_beta(headers.get("anthropic-beta", ""), OAUTH_BETA)


def with_beta(betas: str, flag: str) -> str:
    """`betas` (comma-separated) with `flag` among them, once.

    >>> with_beta("claude-code-20250219, oauth-2025-04-20", "oauth-2025-04-20")
    'claude-code-20250219,oauth-2025-04-20'
    """
    names = [b.strip() for b in betas.split(",") if b.strip()]
    return ",".join([*names, flag] if flag not in names else names)


FORWARDED_QUERY = frozenset({"beta"})
"""The query parameters the Messages API takes (`?beta=true` from the Anthropic SDKs and Claude
Code); any other (`?api_key=…`, a client's own markers) stays here."""


def upstream_query(query: str) -> str:
    """The part of a client's query string an Anthropic upstream is sent.

    >>> upstream_query("beta=true&api_key=sk-secret")
    'beta=true'
    """
    if not query:
        return ""
    kept = [part for part in query.split("&") if part.partition("=")[0] in FORWARDED_QUERY]
    return "&".join(kept)
