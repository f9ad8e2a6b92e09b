"""How the fake upstream's APIs refuse, each in its own error shape (bodies the real services
send: a field they cannot take, a missing or wrong key, a subscription token without the OAuth
beta flag)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def _json(body: dict[str, Any]) -> dict[str, Any]:
    return {"text": orjson.dumps(body).decode(), "content_type": "application/json"}


def refused(dialect: str, field: str, message: str) -> web.HTTPBadRequest:
    """The 400 each API answers a body it cannot take, in its own shape."""
    if dialect == "anthropic":
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": f"{field}: {message}"},
        }
    elif dialect == "codex":
        body = {"detail": message}
    else:
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": field,
                "code": "invalid_type",
            }
        }
    return web.HTTPBadRequest(**_json(body))


def unauthorized(dialect: str) -> web.HTTPUnauthorized:
    """A request without a key the API knows."""
    if dialect == "anthropic":
        err = {"type": "authentication_error", "message": "invalid x-api-key"}
        return web.HTTPUnauthorized(**_json({"type": "error", "error": err}))
    err = {"type": "invalid_api_key", "message": "Incorrect API key provided"}
    return web.HTTPUnauthorized(**_json({"error": err}))


def oauth_refused() -> web.HTTPUnauthorized:
    """What the Messages API answers a subscription's token sent without the OAuth beta flag."""
    err = {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "OAuth authentication is currently not supported.",
        },
    }
    return web.HTTPUnauthorized(**_json(err))
