"""The data plane: a bare ASGI app (no middleware stack) in front of the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from quotapool import tracing
from quotapool.control.metrics import Metrics
from quotapool.domain.client import ClientKey
from quotapool.domain.request import Route
from quotapool.proxy.admission import Admission
from quotapool.proxy.answers import LoggedBeforeTheEnd, cut_at_shutdown, replaying
from quotapool.proxy.asgi import Headers, Receive, Scope, Send, send_body
from quotapool.proxy.disconnect import DisconnectWatches, Watch
from quotapool.proxy.errors import Dialect, ErrorResponse, error, refusal_page, wants_page
from quotapool.proxy.exchange import Exchange, send_refusal
from quotapool.proxy.parse import (
    GEMINI_CALL,
    BadRequest,
    ClientLeft,
    client_headers,
    gemini_scope,
    parse_request,
    profile_path,
    read_body,
)
from quotapool.proxy.record import Record
from quotapool.proxy.routes import (
    ADMIN_PREFIX,
    ENDPOINTS,
    GEMINI_MODELS_PATH,
    MODELS_PATH,
    OPEN_PATHS,
    POOL_PATH,
    READY,
    USAGE_PATHS,
    Endpoint,
    dialect_for,
    gemini_call,
    wants_websocket,
)
from quotapool.proxy.ws import refuse_upgrade
from quotapool.routing.profiles import PROFILE_HEADER
from quotapool.tracing import Tracing
from quotapool.upstream.base import ClientRequest

log = logging.getLogger(__name__)

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WebSocketHandler = Callable[
    [Scope, Receive, Exchange, dict[str, str], str, ClientKey | None], Awaitable[None]
]


class ProxyApp:
    """Routes by exact path; proxied requests go to `serve`, the rest to small handlers."""

    def __init__(
        self,
        *,
        serve: Callable[[ClientRequest, Exchange], Awaitable[None]],
        submit: Callable[[dict[str, Any]], None],
        models: Callable[[Dialect, str | None], Awaitable[tuple[int, bytes]]],
        ready: Callable[[], tuple[str, dict[str, Any]]],
        draining: Callable[[], bool] = lambda: False,
        pool_view: Callable[[], bytes],
        pool_usage: Callable[[], bytes] = lambda: b"{}",
        now: Callable[[], float],
        max_body_bytes: int,
        body_timeout: float,
        on_startup: Callable[[], Awaitable[None]],
        on_shutdown: Callable[[], Awaitable[None]],
        admission: Admission,
        websocket: WebSocketHandler | None = None,
        metrics: Metrics | None = None,
        admin: ASGIApp | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._admin = admin
        self._door = admission
        self._metrics = metrics
        self._websocket_bridge = websocket
        self._serve = serve
        self._submit = submit
        self._models = models
        self._ready = ready
        self._draining = draining
        self._pool_view = pool_view
        self._pool_usage = pool_usage
        self._now = now
        self._limit = max_body_bytes
        self._startup = on_startup
        self._shutdown = on_shutdown
        self._tracing = tracing
        self._ids = itertools.count(1)
        self._active = 0
        """Client requests (and sockets) being served; shutdown waits for their log rows."""
        self._watches = DisconnectWatches(body_timeout=body_timeout)
        self._id_prefix = os.urandom(4).hex()

    def _request_id(self) -> str:
        """Fixed width, so ids sort in arrival order: the request log's unique index then grows
        at its end instead of splitting pages all over (measured: fewer writes per row)."""
        return f"qp-{self._id_prefix}-{next(self._ids):010x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._drained(DRAIN_AFTER_CANCEL_SECONDS)
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _drained(self, timeout: float) -> None:
        """Wait (bounded) for requests cut at shutdown to write their rows and last events."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._active and loop.time() < deadline:
            await asyncio.sleep(0.01)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._active += 1
        try:
            await self._bridge(scope, receive, send)
        finally:
            self._active -= 1

    async def _bridge(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        request_id = self._request_id()
        base: Headers = [(b"x-quotapool-request-id", request_id.encode())]
        record = Record(request_id, self._now(), Route.WEBSOCKET.value, path)
        exchange = Exchange(Dialect.CODEX, send, record, base, self._now)
        route_path, profile = profile_path(path)
        endpoint = ENDPOINTS.get(route_path.rstrip("/"))
        bridge = self._websocket_bridge
        try:
            if bridge is None or endpoint is None or endpoint.route is not Route.RESPONSES:
                await receive()
                no_route = error(Dialect.CODEX, 404, f"No WebSocket route {path}.")
                await refuse_upgrade(scope, exchange, no_route)
                return
            refusal, key = await self._door.socket(scope, record)
            if refusal is not None:
                await receive()
                await refuse_upgrade(scope, exchange, refusal)
                return
            forwarded, digest = client_headers(scope["headers"], profile)
            if key is not None and key.profile is not None:
                forwarded[PROFILE_HEADER] = key.profile
            await bridge(scope, receive, exchange, forwarded, digest, key)
        except Exception as exc:  # a bug must cost one session, never the server
            log.exception("websocket %s failed", request_id)
            exchange.ended(500, f"internal error: {type(exc).__name__}")
        finally:
            self._finish(record)

    def _answer_headers(self, request_id: str) -> Headers:
        """What every answer says; while draining, `Connection: close` too (no idle connection
        is left behind when the listener closes)."""
        base: Headers = [(b"x-quotapool-request-id", request_id.encode())]
        if self._draining():
            base.append((b"connection", b"close"))
        return base

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        request_id = self._request_id()
        base = self._answer_headers(request_id)
        route_path, profile = profile_path(path)
        endpoint, scope = _endpoint(route_path, scope)
        dialect = endpoint.dialect if endpoint else dialect_for(route_path)
        if route_path.startswith(MODELS_PATH):  # the Anthropic and Gemini SDKs list models too
            dialect = _listing_dialect(scope["headers"], dialect)
        if endpoint is None and self._admin is not None and route_path.startswith(ADMIN_PREFIX):
            await self._to_admin(self._admin, scope, receive, send, base, dialect)
            return
        if endpoint is None:
            known = ", ".join(sorted(ENDPOINTS))
            await send_refusal(
                send, base, error(dialect, 404, f"No route {path}. Routes: {known}.")
            )
            return
        method = scope["method"]
        if method == "GET" and endpoint.route is Route.RESPONSES and wants_websocket(scope):
            # 426 makes the Codex CLI fall back to HTTP at once (503 would make it retry).
            message = "The WebSocket transport is not enabled here; use HTTP (POST)."
            await send_refusal(send, base, error(dialect, 426, message))
            return
        if method not in endpoint.methods:
            allowed = ", ".join(endpoint.methods)
            base.append((b"allow", allowed.encode()))
            message = f"{method} is not supported on {path}; use {allowed}."
            await send_refusal(send, base, error(dialect, 405, message))
            return
        if route_path == "/metrics":
            await self._scrape(scope, send, base)
            return
        if route_path == POOL_PATH:
            refused, key = await self._door.pool_view(scope, dialect)
        else:
            refused, key = await self._door.request(
                scope,
                dialect,
                key_needed=route_path not in OPEN_PATHS,
                json_body=endpoint.route is not None,
            )
        if refused is not None:
            if endpoint.route is not None:  # `quotapool requests --status 401` finds it
                self._log_refusal(request_id, endpoint.route, path, refused)
            await send_refusal(send, base, refused)
            return
        if endpoint.route is None:
            await self._own(route_path, dialect, send, base)
            return
        await self._proxy(
            scope, receive, send, endpoint.route, dialect, request_id, base, profile, key
        )

    async def _to_admin(
        self,
        admin: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        base: Headers,
        dialect: Dialect,
    ) -> None:
        """The admin API and the dashboard (their own app, their own token check) behind the
        same door as the data plane: the remote rule, the guard, and a body read whole within
        its size and time limits before the app sees it."""
        if (refused := await self._door.admin(scope)) is not None:
            page = wants_page(scope["headers"])
            answer = (refusal_page if page else partial(error, dialect))(
                refused.status, refused.message
            )
            await send_refusal(send, base, answer)
            return
        watch = self._watches.watch(receive, reading=True)
        try:
            body = await read_body(
                scope, receive, min(self._limit, ADMIN_MAX_BODY_BYTES), dialect, watch
            )
        except BadRequest as bad:
            await send_refusal(send, base, bad.response)
            return
        except ClientLeft:
            return
        except asyncio.CancelledError:
            if not watch.body_late or watch.handler is None:
                raise
            watch.handler.uncancel()
            await send_refusal(send, base, self._body_late(dialect))
            return
        finally:
            self._watches.stop(watch)
        await admin(scope, replaying(body, receive), send)

    async def _scrape(self, scope: Scope, send: Send, base: Headers) -> None:
        """`GET /metrics` (see `Admission.metrics`)."""
        if self._metrics is None:
            response = error(Dialect.OPENAI, 404, "Metrics are not enabled here.")
        elif (refused := self._door.metrics(scope)) is not None:
            response = refused
        else:
            body = self._metrics.exposition()
            await send_body(send, 200, body, base, CONTENT_TYPE_LATEST.encode())
            return
        await send_refusal(send, base, response)

    async def _own(self, path: str, dialect: Dialect, send: Send, base: Headers) -> None:
        if path == "/health":
            await send_body(send, 200, b'{"status":"ok"}', base)
        elif path == "/ready":
            said, detail = self._ready()
            body = orjson.dumps({"status": said, **detail})
            await send_body(send, 200 if said == READY else 503, body, base)
        elif path == POOL_PATH:
            await send_body(send, 200, self._pool_view(), base)
        elif path in USAGE_PATHS:
            await send_body(send, 200, self._pool_usage(), base)
        else:
            listing = GEMINI_MODELS_PATH if path.startswith(GEMINI_MODELS_PATH) else MODELS_PATH
            model = path.removeprefix(listing).strip("/").removeprefix("models/") or None
            status, body = await self._models(dialect, model)
            await send_body(send, status, body, base)

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        dialect: Dialect,
        request_id: str,
        base: Headers,
        profile: str | None,
        key: ClientKey | None,
    ) -> None:
        record = Record(request_id, self._now(), route.value, scope["path"])
        watch = self._watches.watch(receive, reading=True)
        self._active += 1
        logged = LoggedBeforeTheEnd(send, record, self._finish)
        exchange = Exchange(dialect, logged.send, record, base, self._now)
        traced = self._tracing.request(record) if self._tracing else contextlib.nullcontext()
        with traced:  # (the span ends after the answer and its log row are settled)
            try:
                await self._read_and_serve(
                    scope, receive, route, dialect, profile, key, exchange, watch
                )
            except BadRequest as bad:
                await exchange.refuse(bad.response)
            except ClientLeft:
                exchange.ended(499, "client left while sending its body")
            except asyncio.CancelledError:
                await self._cancelled(watch, exchange, route)
            except Exception as exc:  # a bug must cost one request, never leak a traceback
                log.exception("request %s failed", request_id)
                reason = f"internal error: {type(exc).__name__}"
                if exchange.answered:
                    exchange.ended(500, reason)
                else:
                    message = (
                        f"quotapool failed on this request ({type(exc).__name__}); "
                        f"its log has the details under {request_id}."
                    )
                    await exchange.refuse(error(dialect, 500, message), reason)
            finally:
                self._active -= 1
                self._watches.stop(watch)
                if not logged.done:
                    self._finish(record)

    async def _read_and_serve(
        self,
        scope: Scope,
        receive: Receive,
        route: Route,
        dialect: Dialect,
        profile: str | None,
        key: ClientKey | None,
        exchange: Exchange,
        watch: Watch,
    ) -> None:
        """The request read, admitted and served (inside its span when tracing is on)."""
        record = exchange.record
        with tracing.span("admission", {"quotapool.route": route.value}):
            body = await read_body(scope, receive, self._limit, dialect, watch)
            request = parse_request(
                route,
                body,
                scope["headers"],
                dialect,
                profile,
                key,
                scope.get("query_string", b""),
                scope.get(GEMINI_CALL),
            )
            record.model, record.stream = request.model, request.stream
            await self._door.model(key, request.model, dialect, record)
        await self._serve(request, exchange)

    async def _cancelled(self, watch: Watch, exchange: Exchange, route: Route) -> None:
        """A request cancelled: its client left, its body stopped arriving, or the server's
        grace period at shutdown is over."""
        if not (watch.disconnected or watch.body_late):
            await cut_at_shutdown(exchange, route)
            return
        if watch.handler is not None:
            watch.handler.uncancel()
        if watch.body_late:
            await exchange.refuse(
                self._body_late(exchange.dialect), "request body stopped arriving"
            )
        else:
            exchange.ended(499, "client disconnected")

    def _body_late(self, dialect: Dialect) -> ErrorResponse:
        """The 408 of a body that stopped arriving (cut by the watches' sweep)."""
        message = (
            f"The request body stopped arriving for {self._watches.body_timeout:g} s; "
            "send it whole."
        )
        return error(dialect, 408, message)

    def _log_refusal(
        self, request_id: str, route: Route, path: str, refused: ErrorResponse
    ) -> None:
        """A request refused at the door (no key, a wrong one, from a web page): a row and an
        access-log line like any other."""
        record = Record(request_id, self._now(), route.value, path)
        record.status, record.error = refused.status, refused.body.decode("utf-8", "replace")
        self._finish(record)

    def _finish(self, record: Record) -> None:
        record.latency_ms = (self._now() - record.at) * 1000.0
        self._submit(record.row())


def _listing_dialect(headers: Headers, dialect: Dialect) -> Dialect:
    """Whose shape `GET /v1/models` answers in: the SDK's that asks (by its headers)."""
    for name, _ in headers:
        if name == b"anthropic-version":
            return Dialect.ANTHROPIC
        if name in (b"x-goog-api-key", b"x-goog-api-client"):
            return Dialect.GEMINI
    return dialect


def _endpoint(path: str, scope: Scope) -> tuple[Endpoint | None, Scope]:
    """What serves `path` (None: no data-plane path), and the scope it is served with (a
    Gemini call's notes its model)."""
    endpoint = ENDPOINTS.get(path.rstrip("/") or "/")
    if endpoint is None and (gemini := gemini_call(path)) is not None:
        return gemini.endpoint, gemini_scope(scope, gemini)
    for listing in (MODELS_PATH, GEMINI_MODELS_PATH):
        if endpoint is None and path.startswith(listing + "/") and ":" not in path:
            return ENDPOINTS[listing], scope  # GET /v1/models/{id} (not a model's method)
    return endpoint, scope


ADMIN_MAX_BODY_BYTES = 1024 * 1024
"""The admin API and the dashboard take small bodies (a login form, a key's settings)."""


DRAIN_AFTER_CANCEL_SECONDS = 2.0
"""After the grace period, how long shutdown waits for cut requests to end their streams and
queue their rows before the log writers stop."""
