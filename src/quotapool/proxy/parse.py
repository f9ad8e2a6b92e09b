"""A client request read and parsed once: its body within its limits, the model and stream
flag routing needs, the headers an upstream may get and a digest of the client's own
credential."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

import orjson

from quotapool.domain.client import ClientKey
from quotapool.domain.request import Route
from quotapool.jsonlazy import loads_object, plain
from quotapool.proxy.asgi import Receive, Scope
from quotapool.proxy.disconnect import Watch
from quotapool.proxy.errors import Dialect, ErrorResponse, error
from quotapool.proxy.routes import GeminiCall
from quotapool.routing.profiles import PROFILE_HEADER
from quotapool.upstream.base import ClientRequest

# Client headers never sent upstream: hop-by-hop, framing, and the client's own credentials.
_DROP_REQUEST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "chatgpt-account-id",
        "accept-encoding",
        "cookie",
    }
)


_CLIENT_CREDENTIALS = frozenset({"authorization", "x-api-key", "x-goog-api-key"})
TOOL_FIELDS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})
"""Stripped from compaction requests: compaction never calls tools."""


class BadRequest(Exception):
    def __init__(self, response: ErrorResponse) -> None:
        super().__init__(response.status)
        self.response = response


class ClientLeft(Exception):
    """The client went away while sending its request."""


async def read_body(
    scope: Scope, receive: Receive, limit: int, dialect: Dialect, watch: Watch | None = None
) -> bytes:
    """The whole request body, refusing (413) past `limit` bytes without buffering it all. Each
    part that arrives is noted on `watch`, whose sweep cuts a body that stops arriving."""

    def too_large() -> BadRequest:
        message = (
            f"Request body is larger than the {limit} byte limit; "
            "raise max_body_bytes in quotapool.toml if this is intended."
        )
        return BadRequest(error(dialect, 413, message))

    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientLeft
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            if watch is not None:
                watch.reading = False
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if watch is not None:
            watch.progress = asyncio.get_running_loop().time()


LAZY_ROUTES = frozenset({Route.RESPONSES, Route.COMPACT})
"""Routes whose bodies are read a field at a time: a Responses turn mostly goes on as it came
(to a ChatGPT account or an OpenAI key), so building its conversation is wasted. Chat and
Messages bodies are parsed whole: Claude Code on ChatGPT accounts is translated, and a
translator reads all of it (measured, 60 KB bodies: Responses passed through −15.9 %
instructions per request read lazily; Messages translated +8.2 %, passed through −3.3 %)."""


def parse_request(
    route: Route,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    dialect: Dialect,
    profile: str | None = None,
    key: ClientKey | None = None,
    query: bytes = b"",
    gemini: GeminiCall | None = None,
) -> ClientRequest:
    """Parse the body once and check what routing needs; a clear 400 otherwise. On
    `LAZY_ROUTES` its fields become Python values as they are read (`jsonlazy`). A Gemini
    call's model and stream flag (from its path) join its payload."""
    try:
        payload = loads_object(body) if route in LAZY_ROUTES else orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            error(dialect, 400, f"Request body is not valid JSON ({exc}); send a JSON object.")
        ) from None
    if not isinstance(payload, Mapping):
        raise BadRequest(error(dialect, 400, "Request body must be a JSON object."))
    if gemini is not None:
        if gemini.stream and b"alt=sse" not in query.split(b"&"):
            message = (
                "streamGenerateContent is served as server-sent events here: add ?alt=sse "
                "(the Gemini SDKs and CLI do)."
            )
            raise BadRequest(error(dialect, 400, message, param="alt"))
        payload = {**payload, "model": gemini.model, "stream": gemini.stream}
        body = orjson.dumps(payload)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest(
            error(
                dialect,
                400,
                "Missing 'model': say which model to use, e.g. \"gpt-5.5\".",
                param="model",
            )
        )
    if route is Route.COMPACT and TOOL_FIELDS & payload.keys():
        payload = {k: v for k, v in plain(payload).items() if k not in TOOL_FIELDS}
        body = orjson.dumps(payload)
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest(error(dialect, 400, "'stream' must be true or false.", param="stream"))
    forwarded, client = client_headers(headers, profile)
    if key is not None and key.profile is not None:
        forwarded[PROFILE_HEADER] = key.profile  # a key's profile beats the header and path
    allowed = key.models if key is not None else frozenset()
    return ClientRequest(
        route, body, payload, model, stream, forwarded, client, query.decode("latin-1"), allowed
    )


_DROP_RAW = frozenset(name.encode() for name in _DROP_REQUEST_HEADERS)
_CLIENT_CREDENTIALS_RAW = frozenset(name.encode() for name in _CLIENT_CREDENTIALS)


GEMINI_CALL = "quotapool.gemini"
"""The scope key of a Gemini call's model and stream flag (`routes.GeminiCall`)."""


def gemini_scope(scope: Scope, call: GeminiCall) -> Scope:
    """A Gemini call's scope: its call noted, and a key sent as `?key=` (as the Gemini SDKs
    may) moved to the `x-goog-api-key` header, where the door looks (never sent upstream)."""
    query: bytes = scope.get("query_string", b"")
    parts = query.split(b"&") if query else []
    keys = [p[4:] for p in parts if p.startswith(b"key=")]
    headers = list(scope["headers"])
    if keys and not any(name == b"x-goog-api-key" for name, _ in headers):
        headers.append((b"x-goog-api-key", unquote_to_bytes(keys[0])))
    kept = b"&".join(p for p in parts if not p.startswith(b"key="))
    return {**scope, "headers": headers, "query_string": kept, GEMINI_CALL: call}


def profile_path(path: str) -> tuple[str, str | None]:
    """`/p/NAME/v1/responses` → (`/v1/responses`, NAME): a routing profile chosen by the base
    URL, for clients that let you set nothing else."""
    if not path.startswith("/p/"):
        return path, None
    name, _, rest = path[3:].partition("/")
    return "/" + rest, name or None


def client_headers(
    headers: list[tuple[bytes, bytes]], profile: str | None = None
) -> tuple[dict[str, str], str]:
    """The client's headers (upstreams get only those their allowlist names), and a digest of
    the client's own credential. A profile from the path counts as its
    `x-quotapool-profile` header, unless that header is sent too."""
    forwarded: dict[str, str] = {}
    client = hashlib.blake2b(digest_size=8)
    for name, value in headers:  # ASGI servers give lowercase names
        if name in _DROP_RAW:
            if name in _CLIENT_CREDENTIALS_RAW:
                client.update(value)
            continue
        forwarded[name.decode("latin-1")] = value.decode("latin-1")
    if profile is not None:
        forwarded.setdefault(PROFILE_HEADER, profile)
    return forwarded, client.hexdigest()
