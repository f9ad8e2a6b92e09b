"""Gemini API keys: Gemini clients pass through (`generateContent`, `streamGenerateContent`
with `alt=sse`), the key in `x-goog-api-key`; the other APIs' clients are translated onto
its stream. A Gemini request's model and stream flag ride in quotapool's payload
(`domain.api.Route.GEMINI`): here they go back into the path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from quotapool.domain.api import Api
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.quota import QuotaReading
from quotapool.domain.request import Route
from quotapool.jsonlazy import plain
from quotapool.secrets import Secret
from quotapool.translate.table import translate
from quotapool.upstream.base import ClientRequest, Relay, UpstreamCall
from quotapool.upstream.headers import forwarded

OURS = ("model", "stream")
"""What quotapool adds to a Gemini payload (its path's), never sent in a body."""


def gemini_url(credential: Credential, model: str, stream: bool) -> str:
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{credential.base_url}/v1beta/models/{quote(model, safe='')}:{verb}"


def _body(payload: Mapping[str, Any]) -> bytes:
    """The Gemini body: the payload without what its path carries."""
    return orjson.dumps({k: v for k, v in payload.items() if k not in OURS})


class GeminiTransport:
    kind = Kind.GEMINI

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient

    def prepare(
        self, request: ClientRequest, credential: Credential, secret: Secret
    ) -> UpstreamCall:
        headers = forwarded(request.headers, self.kind)
        headers["x-goog-api-key"] = secret.token
        headers["content-type"] = "application/json"
        payload = plain(request.payload)
        if request.route is not Route.GEMINI:
            done = translate(request.route, Api.GEMINI, payload, lenient=self.lenient)
            url = gemini_url(credential, str(done.body["model"]), stream=True)
            return UpstreamCall(
                url,
                headers,
                _body(done.body),
                Relay.TRANSLATED,
                dropped=done.dropped,
                adapter=done.adapter,
            )
        url = gemini_url(credential, request.model, request.stream)
        return UpstreamCall(url, headers, _body(payload), Relay.PASSTHROUGH)

    def quota(self, headers: Mapping[str, str], now: float) -> QuotaReading | None:
        return None  # (the Gemini API announces no headroom: its limits come with its 429s)
