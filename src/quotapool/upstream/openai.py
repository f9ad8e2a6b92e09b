"""OpenAI-compatible API keys: requests pass through to `{base_url}/responses|chat/completions`."""

from __future__ import annotations

from collections.abc import Mapping

from quotapool.domain.credential import Credential, Kind
from quotapool.domain.quota import QuotaReading
from quotapool.domain.request import Route
from quotapool.upstream.base import ClientRequest, Relay, Secret, UpstreamCall
from quotapool.upstream.signals import parse_openai_headers

_PATHS = {
    Route.RESPONSES: "/responses",
    Route.COMPACT: "/responses/compact",
    Route.CHAT: "/chat/completions",
}


class OpenAITransport:
    kind = Kind.OPENAI

    def prepare(
        self, request: ClientRequest, credential: Credential, secret: Secret
    ) -> UpstreamCall:
        headers = dict(request.headers)
        headers["authorization"] = f"Bearer {secret.token}"
        headers["content-type"] = "application/json"
        url = credential.base_url + _PATHS[request.route]
        return UpstreamCall(url, headers, request.body, Relay.PASSTHROUGH)

    def quota(self, headers: Mapping[str, str], now: float) -> QuotaReading | None:
        return parse_openai_headers(headers, now)
