"""OpenAI-compatible API keys: requests pass through to `{base_url}/responses|chat/completions`,
or are translated onto the API the server offers (`apis`)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from quotapool.domain.api import Api
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.quota import QuotaReading
from quotapool.domain.request import Route
from quotapool.jsonlazy import plain
from quotapool.secrets import Secret
from quotapool.translate.table import translation, upstream_of
from quotapool.upstream.base import ClientRequest, Relay, UpstreamCall, translated_call
from quotapool.upstream.headers import forwarded
from quotapool.upstream.signals import parse_openai_headers

_PATHS = {
    Route.RESPONSES: "/responses",
    Route.COMPACT: "/responses/compact",
    Route.CHAT: "/chat/completions",
}


class OpenAITransport:
    kind = Kind.OPENAI

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient

    def prepare(
        self, request: ClientRequest, credential: Credential, secret: Secret
    ) -> UpstreamCall:
        headers = forwarded(request.headers, Kind.OPENAI)
        headers["authorization"] = f"Bearer {secret.token}"
        headers["content-type"] = "application/json"
        upstream = upstream_of(credential, request.route)
        if translation(request.route, upstream) is not None:
            path = "/responses" if upstream is Api.RESPONSES else "/chat/completions"
            session = request.headers.get("x-claude-code-session-id")
            return translated_call(
                credential.base_url + path,
                headers,
                request,
                upstream,
                lenient=self.lenient,
                session=session,
            )
        url = credential.base_url + _PATHS[request.route]
        payload = request.payload
        options = payload.get("stream_options")
        if (
            request.route is Route.CHAT
            and request.stream
            and not (isinstance(options, dict) and options.get("include_usage"))
        ):
            # Without usage the request log has no tokens: ask for it, hide it from the client.
            extra = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            body = orjson.dumps({**plain(payload), "stream_options": extra})
            return UpstreamCall(url, headers, body, Relay.PASSTHROUGH, hide_usage_chunk=True)
        return UpstreamCall(url, headers, request.body, Relay.PASSTHROUGH)

    def quota(self, headers: Mapping[str, str], now: float) -> QuotaReading | None:
        return parse_openai_headers(headers, now)
