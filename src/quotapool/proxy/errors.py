"""Client-facing errors in the shape each API's SDKs understand."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from quotapool.proxy.asgi import Headers
from quotapool.routing.base import Rejection
from quotapool.translate import LENIENT_HINT


class Dialect(Enum):
    """Which API's error shape a route speaks."""

    OPENAI = "openai"
    CODEX = "codex"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
}
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    408: "DEADLINE_EXCEEDED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""The `google.rpc.Code` name the Gemini API gives each HTTP status."""
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    426: "invalid_request_error",
    429: "rate_limit_exceeded",
    431: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable",
}


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


def error(
    dialect: Dialect,
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
) -> ErrorResponse:
    if dialect is Dialect.ANTHROPIC:
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    elif dialect is Dialect.GEMINI:
        said = _GEMINI_STATUS.get(status, "INTERNAL")
        body = {"error": {"code": status, "message": message, "status": said}}
    else:
        kind = _OPENAI_TYPES.get(status, "server_error")
        body = {"error": {"message": message, "type": kind, "param": param, "code": code or kind}}
    return ErrorResponse(status, orjson.dumps(body))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>quotapool · refused</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/quotapool/static/app.css"></head>
<body class="login"><main><h1>quotapool</h1>
<p class="problem" role="alert">{message}</p></main></body></html>
"""


def refusal_page(status: int, message: str) -> ErrorResponse:
    """A refusal a person sees in a browser: a page saying what to do, not JSON."""
    page = _PAGE.format(message=html.escape(message)).encode()
    headers = ((b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store"))
    return ErrorResponse(status, page, headers)


def wants_page(headers: Headers) -> bool:
    """A browser navigating (it asks for HTML first), not a script or an SDK."""
    return any(name == b"accept" and value.startswith(b"text/html") for name, value in headers)


SHOULD_RETRY_WITHIN_SECONDS = 60
"""Past this wait, clients are told not to retry on their own (`x-should-retry: false`): the
OpenAI and Anthropic SDKs would otherwise sleep Retry-After, twice, before failing."""


def retry_headers(seconds: int) -> tuple[tuple[bytes, bytes], ...]:
    headers: tuple[tuple[bytes, bytes], ...] = ((b"retry-after", str(seconds).encode()),)
    if seconds > SHOULD_RETRY_WITHIN_SECONDS:
        headers += ((b"x-should-retry", b"false"),)
    return headers


EXPLAINED = 10
"""Exclusions an error body names at most (a pool of a thousand would make it a page)."""


def rejection_error(rejection: Rejection, dialect: Dialect, now: float) -> ErrorResponse:
    """The client's answer when routing finds no credential: 400 when none can honour a
    parameter of the request, 404 when none serves the model, 503 when upstreams fail (an
    outage is not a usage limit), 429 + Retry-After when limits or quota keep every credential
    out, 503 otherwise."""
    excluded = rejection.excluded
    detail = "; ".join(f"{e.credential}: {e.reason}" for e in excluded[:EXPLAINED]) or "empty pool"
    if len(excluded) > EXPLAINED:
        detail += f"; and {len(excluded) - EXPLAINED} more"
    if rejection.param is not None:
        hint = LENIENT_HINT[:1].upper() + LENIENT_HINT[1:]
        message = f"{rejection.message[:1].upper()}{rejection.message[1:]}. {hint}."
        return error(dialect, 400, message, param=rejection.param)
    if rejection.reserved:
        message = rejection.message[:1].upper() + rejection.message[1:] + "."
        return error(dialect, 403, message, code="claude_code_only")
    if rejection.no_match:
        message = f"{rejection.message}. GET /v1/models lists the models this pool serves."
        return error(dialect, 404, message, param="model", code="model_not_found")
    if rejection.outage:
        return upstream_unavailable(dialect, rejection.retry_at, now, detail)
    if rejection.retry_at is not None:
        reason = rejection.message[:1].upper() + rejection.message[1:]
        return pool_exhausted(dialect, rejection.retry_at, now, detail, reason)
    if not rejection.excluded:  # nothing to explain but the reason itself (an empty pool)
        return error(dialect, 503, rejection.message[:1].upper() + rejection.message[1:] + ".")
    return error(
        dialect,
        503,
        f"No credential can serve this request now ({detail}). "
        "Resume a paused credential or add one to the pool.",
    )


RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def pool_exhausted(
    dialect: Dialect, retry_at: float, now: float, detail: str, reason: str
) -> ErrorResponse:
    """429 with Retry-After; Codex routes get the `usage_limit_reached` body the CLI reads."""
    seconds = max(1, math.ceil(retry_at - now))
    message = f"{reason} ({detail}). The soonest one is back in {seconds} s; try again then."
    retry = retry_headers(seconds)
    if dialect is Dialect.ANTHROPIC:
        response = error(dialect, 429, message)
        return ErrorResponse(429, response.body, retry)
    if dialect is Dialect.GEMINI:  # (the Gemini SDKs and CLI wait as RetryInfo says)
        info = {"@type": RETRY_INFO, "retryDelay": f"{seconds}s"}
        said = {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": [info]}
        return ErrorResponse(429, orjson.dumps({"error": said}), retry)
    kind = "usage_limit_reached" if dialect is Dialect.CODEX else "rate_limit_exceeded"
    body = {
        "error": {
            "type": kind,
            "code": kind,
            "message": message,
            "param": None,
            "resets_at": math.ceil(retry_at),
            "resets_in_seconds": seconds,
        }
    }
    return ErrorResponse(429, orjson.dumps(body), retry)


def upstream_unavailable(
    dialect: Dialect, retry_at: float | None, now: float, detail: str
) -> ErrorResponse:
    """503 when the upstreams fail: a server error every SDK (and the Codex CLI) retries, with
    the upstreams' own reasons. Retry-After is when the next probe of a credential is due."""
    seconds = max(1, math.ceil(retry_at - now)) if retry_at is not None else 1
    message = (
        f"The upstream of every credential is failing ({detail}). quotapool is probing them "
        f"and serves again as soon as one answers; retry in {seconds} s."
    )
    response = error(dialect, 503, message)
    if dialect is not Dialect.ANTHROPIC:
        body = {
            "error": {
                "message": message,
                "type": "server_error",
                "param": None,
                "code": "upstream_unavailable",
            }
        }
        response = ErrorResponse(503, orjson.dumps(body))
    return ErrorResponse(503, response.body, retry_headers(seconds))
