"""The Codex WebSocket transport: one client socket bridged to one account's upstream socket.

The prewarm, the turn and its tool follow-ups (chained by `previous_response_id`) travel over
one client connection, so they all reach the one account that knows those response ids. The
account is chosen, and failed over, before the client's upgrade is accepted; an upstream without
WebSocket support makes the proxy answer 426, which sends the Codex CLI to HTTP at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from quotapool.control.keys import KeyRing
from quotapool.domain.client import ClientKey
from quotapool.domain.credential import Credential
from quotapool.domain.outcome import Abandoned, Failed, Limited, Observed
from quotapool.domain.request import Route, RouteRequest
from quotapool.net.client import SocketRefused, UpstreamSocket
from quotapool.net.egress import EgressError, report
from quotapool.proxy.asgi import Message, Receive, Scope, Send
from quotapool.proxy.dispatcher import Dispatcher
from quotapool.proxy.errors import Dialect, ErrorResponse, error, rejection_error
from quotapool.proxy.exchange import Exchange
from quotapool.proxy.failover import Failover
from quotapool.proxy.learn import EventLearner
from quotapool.proxy.relay import TRANSPORT_ERRORS
from quotapool.proxy.reservation import Reservation
from quotapool.proxy.ws_turns import Turns, refusal_frame
from quotapool.routing.affinity import affinity_key
from quotapool.routing.base import Rejection
from quotapool.translate import TranslationError
from quotapool.upstream.base import ClientRequest
from quotapool.upstream.codex import codex_auth, codex_url
from quotapool.upstream.signals import classify_error, parse_codex_headers
from quotapool.upstream.sse import SSEFramer, event_data

log = logging.getLogger(__name__)

NO_WEBSOCKET = frozenset({404, 405, 426, 501})
RECONNECT = 1012
"""The close code that tells a client to open a new socket (service restart)."""
"""Upstream answers that mean "no WebSocket here": the client is told to use HTTP."""
_HANDSHAKE_HEADERS = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)

BINARY_REFUSED = refusal_frame(
    error(Dialect.CODEX, 400, "Send requests as text frames of JSON; binary frames are refused.")
)


class _Refused:
    """The client was answered without a socket."""


REFUSED = _Refused()


class WebSocketBridge:
    """Serves `GET /v1/responses` and `/backend-api/codex/responses` upgrades."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        submit: Callable[[dict[str, Any]], None] = lambda _row: None,
        keys: KeyRing | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.submit = submit
        """Where each turn's row goes (the socket's own is written by the app)."""
        self.keys = keys

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        exchange: Exchange,
        forwarded: dict[str, str],
        client: str,
        client_key: ClientKey | None = None,
    ) -> None:
        await receive()  # websocket.connect
        d, send, record = self.dispatcher, exchange.send, exchange.record
        headers = {k: v for k, v in forwarded.items() if k not in _HANDSHAKE_HEADERS}
        profile = d.profile(headers)
        if isinstance(profile, str):
            await refuse_upgrade(scope, exchange, error(Dialect.CODEX, 400, profile))
            return
        record.profile = profile.name
        conversations = d.conversations
        key = affinity_key(headers, {}, client)
        bound = conversations.bound(key)
        owner = await conversations.turn_owner(headers.get("x-codex-turn-state"))
        routed = RouteRequest(Route.WEBSOCKET, "", frozenset(), None, bound, owner, profile.name)
        failover = Failover(d.chooser, routed, record, profile)
        while (choice := await failover.next()) is not None:
            if isinstance(choice, Rejection):
                refusal = rejection_error(choice, Dialect.CODEX, d.clock.now())
                if profile.fallback.chains and not (choice.param or choice.reserved):
                    message = (
                        f"No account can take a WebSocket now ({choice.message}); use HTTP, "
                        "where the profile's fallback models apply."
                    )
                    refusal = error(Dialect.CODEX, 426, message)  # (a socket names no model)
                await refuse_upgrade(scope, exchange, refusal)
                return
            credential = choice.credential
            if d.warmups is not None and record.attempts == 1:  # (needs the warmup's model)
                d.warmups.after(choice, failover.request, profile)
            with Reservation(d.pool, d.clock, credential.id, choice.rotation) as held:
                upstream = await self._connect(credential, headers, scope, exchange, held)
                if upstream is None:
                    failover.failed(choice)
                    continue
                if isinstance(upstream, _Refused):
                    return
                try:
                    await self._accept(upstream, choice.route_header, exchange)
                    conversations.bind(key, credential.id)
                    turns = Turns(record, client_key, self.keys, self.submit, d.clock.now)
                    try:
                        await self._pump(credential, upstream, headers, receive, send, turns)
                    finally:
                        turns.close()
                finally:  # also when the client left before its upgrade was accepted
                    await upstream.close()
            # The session's end says nothing about health (limits seen inside it stay recorded).
            return
        message = "no account accepted the WebSocket; use HTTP"
        await refuse_upgrade(scope, exchange, error(Dialect.CODEX, 503, message))

    async def _accept(
        self, upstream: UpstreamSocket, route_header: str, exchange: Exchange
    ) -> None:
        accepted = exchange.headers([(b"x-quotapool-route", route_header.encode())])
        accepted += [
            (k.lower().encode(), v.encode())
            for k, v in upstream.headers.items()
            if k.lower().startswith("x-codex-")
        ]
        await exchange.accept_socket(accepted)

    async def _connect(
        self,
        credential: Credential,
        headers: dict[str, str],
        scope: Scope,
        exchange: Exchange,
        held: Reservation,
    ) -> UpstreamSocket | _Refused | None:
        """The upstream socket; None to try another account; REFUSED when the client got 426."""
        d, cid = self.dispatcher, credential.id
        attempts = d.attempts
        upstream_headers = codex_auth(attempts.secrets[cid], headers)
        try:
            upstream = await attempts.client.ws_connect(
                codex_url(credential), upstream_headers, egress=attempts.secrets[cid].egress
            )
        except SocketRefused as exc:
            now = d.clock.now()
            if exc.status in NO_WEBSOCKET:
                held.settle(Abandoned(cid, now))
                message = "The upstream has no WebSocket transport here; use HTTP (POST)."
                await refuse_upgrade(scope, exchange, error(Dialect.CODEX, 426, message))
                return REFUSED
            if exc.status == 401:
                attempts.on_unauthorized(cid)
            verdict = classify_error(exc.status, exc.headers, b"", now)
            reason = verdict.reason or f"handshake {exc.status}"
            held.settle(replace(verdict, reason=reason).outcome(cid, now))
            exchange.broke(verdict.reason)
            return None
        except TRANSPORT_ERRORS as exc:
            report(credential.name, exc)
            why = str(exc) if isinstance(exc, EgressError) else type(exc).__name__
            held.settle(Failed(cid, d.clock.now(), f"websocket: {why}"))
            return None
        if quota := parse_codex_headers(upstream.headers, d.clock.now()):
            d.pool.apply(Observed(cid, d.clock.now(), quota, "headers"))
        return upstream

    async def _pump(
        self,
        credential: Credential,
        upstream: UpstreamSocket,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
        turns: Turns,
    ) -> None:
        """Relay both ways until either side closes, then close the other."""
        listening = self._learner(credential.id, turns)
        pumps = [  # (held here until both have ended)
            asyncio.ensure_future(  # noqa: TID251
                self._client_to_upstream(credential, upstream, headers, receive, send, listening)
            ),
            asyncio.ensure_future(self._upstream_to_client(upstream, send, listening)),  # noqa: TID251
        ]
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            await upstream.close()
        upstream_ended = pumps[1] in done
        if upstream_ended and not (pumps[1].exception() is None and pumps[1].result()):
            with contextlib.suppress(Exception):  # (unless the client's was closed already)
                await send({"type": "websocket.close", "code": upstream.close_code or 1000})

    async def _client_to_upstream(
        self,
        credential: Credential,
        upstream: UpstreamSocket,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
        listening: _Listening,
    ) -> None:
        turns = listening.turns
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:  # a request in a binary frame would pass by the turns' checks
                await send({"type": "websocket.send", "text": BINARY_REFUSED})
                continue
            if (refused := await turns.begin(text)) is not None:
                await send({"type": "websocket.send", "text": refused.frame})
                if refused.close:
                    await send({"type": "websocket.close", "code": 1008, "reason": "key refused"})
                    return
                continue
            if (over_http := _image_generation_request(text)) is not None:
                await self._over_http(credential, headers, over_http, send, listening)
            else:
                await upstream.send_str(text)

    async def _upstream_to_client(
        self, upstream: UpstreamSocket, send: Send, listening: _Listening
    ) -> bool:
        """Relay the upstream's frames; True when the client's socket was closed here."""
        async for frame in upstream.frames():
            if isinstance(frame, bytes):
                await send({"type": "websocket.send", "bytes": frame})
                continue
            if (limited := self._observe(listening, frame)) is not None:
                self.dispatcher.pool.apply(replace(limited, ends=False))  # (the socket goes on)
                if _refuses_turn(frame):
                    # Nothing of the turn was sent; the client would fail its run on this frame
                    # (on a prewarm it opens a new socket), while on a closed socket it retries
                    # on a new one, which goes to another account (or HTTP and a fallback).
                    await send({"type": "websocket.close", "code": RECONNECT, "reason": "limit"})
                    return True
            await send({"type": "websocket.send", "text": frame})
        return False

    async def _over_http(
        self,
        credential: Credential,
        headers: dict[str, str],
        body: dict[str, Any],
        send: Send,
        listening: _Listening,
    ) -> None:
        """Send one turn as an HTTP stream on the same account: the try an HTTP client's turn
        makes (`Attempts`: the same call, relay and settled outcome), its events sent on as
        the socket's frames."""
        attempts, turns = self.dispatcher.attempts, listening.turns
        model = str(body.get("model") or "")
        request = ClientRequest(Route.RESPONSES, orjson.dumps(body), body, model, True, headers)
        frames = _Frames(send, turns)
        exchange = Exchange(Dialect.CODEX, frames.send, turns.current, [], attempts.clock.now)
        try:
            call = attempts.prepare(request, credential)
        except TranslationError as exc:
            await frames.error(400, error(Dialect.CODEX, 400, str(exc), param=exc.param).body)
            return
        failure = await attempts.run(call, credential, request, exchange, [])
        if failure is not None:  # (settled: what its frame says is not applied again)
            await frames.error(failure.status, failure.body)
        elif response_id := exchange.record.response_id:
            self.dispatcher.conversations.own(response_id, credential.id)

    def _learner(self, cid: str, turns: Turns) -> _Listening:
        """Response ids are owned at once (the next frame may continue them); limits are
        applied at once (the CLI opens a new socket after a prewarm 429; the pool must send
        that one to another account)."""
        d = self.dispatcher

        def own(response_id: str) -> None:
            d.conversations.own(response_id, cid)

        return _Listening(EventLearner(turns.current, cid, d.pool, d.clock, own=own), turns)

    def _observe(self, listening: _Listening, data: str) -> Limited | None:
        """Learn from one frame in passing (the client sees it as it is), for its turn; a
        limit it reported is returned, not applied."""
        learner, turns = listening.learner, listening.turns
        learner.record = turns.current
        encoded = data.encode()
        turns.event(encoded, learner.learn(encoded))
        limited, learner.limited = learner.limited, None
        return limited


class _Frames:
    """An HTTP answer's ASGI messages as a socket's frames: each event of a 2xx stream one text
    frame (as the upstream socket sends it), an error answer one error frame; each a frame of
    the socket's current turn."""

    __slots__ = ("_error", "_framer", "_send", "_status", "_turns")

    def __init__(self, send: Send, turns: Turns) -> None:
        self._send = send
        self._turns = turns
        self._status = 200
        self._framer = SSEFramer()
        self._error: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = message["status"]
            return
        body = message.get("body", b"")
        if self._status >= 400:  # (bounded: an error body is read whole and bounded first)
            self._error.append(body)
            if not message.get("more_body", False):
                await self.error(self._status, b"".join(self._error))
            return
        for event in self._framer.feed(body):
            if data := event_data(event)[1]:
                await self.frame(data.decode(errors="replace"))

    async def error(self, status: int, body: bytes) -> None:
        frame = {"type": "error", "status": status, "error": _error_of(body)}
        await self.frame(orjson.dumps(frame).decode())

    async def frame(self, text: str) -> None:
        self._turns.event(text.encode(), None)
        await self._send({"type": "websocket.send", "text": text})


@dataclass(frozen=True, slots=True)
class _Listening:
    """What one socket's upstream frames teach, and the turns they answer."""

    learner: EventLearner
    turns: Turns


def _image_generation_request(text: str) -> dict[str, Any] | None:
    """A `response.create` offering the image_generation tool, as an HTTP body (those turns
    go upstream over HTTP, where large image outputs are handled best)."""
    if '"image_generation"' not in text:
        return None
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "response.create":
        return None
    tools = message.get("tools") or []
    if not any(isinstance(t, dict) and t.get("type") == "image_generation" for t in tools):
        return None
    body = {k: v for k, v in message.items() if k not in ("type", "generate")}
    return {**body, "stream": True, "store": False}


def _refuses_turn(frame: str) -> bool:
    """The upstream's `{"type": "error", "status": 429, …}`: a whole turn refused, before any
    of its output."""
    with contextlib.suppress(orjson.JSONDecodeError):
        event = orjson.loads(frame)
        return isinstance(event, dict) and event.get("type") == "error"
    return False


def _error_of(body: bytes) -> Any:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"type": "upstream_error", "message": body[:500].decode(errors="replace")}
    return payload.get("error", payload) if isinstance(payload, dict) else payload


async def refuse_upgrade(scope: Scope, exchange: Exchange, response: ErrorResponse) -> None:
    """Answer an upgrade with a plain HTTP response (the client never gets a socket)."""
    exchange.ended(response.status, response.body.decode())
    send = exchange.send
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = exchange.headers([*response.headers, (b"content-type", b"application/json")])
        await send(
            {"type": "websocket.http.response.start", "status": response.status, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        await send({"type": "websocket.close", "code": 1013 if response.status == 429 else 1011})
