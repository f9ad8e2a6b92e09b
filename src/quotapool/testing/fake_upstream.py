"""A fake upstream that speaks the Codex backend, OpenAI and Anthropic APIs on loopback.

A real HTTP server (aiohttp), scriptable per account or key: quota headers, 429s with reset
times, 5xx, latency, slow or broken streams. Tests, the demo and the benchmarks use it.

    fake = FakeUpstream()
    fake.add("tok-a", name="alice")                  # a Codex account / API key
    fake.account("tok-a").fail_next(usage_limit(fake.clock.now() + 60))
    with run_in_thread(fake) as base:                 # base = "http://127.0.0.1:PORT"
        ...
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from quotapool.clock import Clock, SystemClock
from quotapool.testing import events
from quotapool.testing.fake_auth import FakeAuth
from quotapool.testing.fake_claude import ClaudeSide
from quotapool.testing.fake_codex import (
    quota_headers,
    scripted,
    wham_usage,
    with_gated_limits,
    ws_frames,
)
from quotapool.testing.fake_gemini import GeminiSide, gemini_limited
from quotapool.testing.fake_model import (
    Account,
    Failure,
    Seen,
    expired,
    rate_limited,
    server_error,
    usage_limit,
)
from quotapool.testing.fake_schemas import (
    ChatBody,
    CountTokensBody,
    MessagesBody,
    ResponsesBody,
    problem,
)
from quotapool.testing.refusals import oauth_refused, refused, unauthorized
from quotapool.testing.serve import run_in_thread, serving

__all__ = [
    "Account",
    "Failure",
    "FakeUpstream",
    "gemini_limited",
    "rate_limited",
    "run_in_thread",
    "server_error",
    "serving",
    "usage_limit",
]


CODEX_UNSUPPORTED = ("max_output_tokens", "temperature", "top_p", "previous_response_id")
"""Parameters the ChatGPT Codex backend answers 400 "Unsupported parameter" over HTTP (measured
by users of other proxies; the Codex CLI never sends them; `previous_response_id` works only over
its WebSocket)."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Peer:
    address: str
    path: str
    account: str | None
    """Whose token it carried (expired or not), if any."""


OAUTH_BETA = "oauth-2025-04-20"


def _betas(request: web.Request) -> set[str]:
    return {b.strip() for b in request.headers.get("anthropic-beta", "").split(",")}


class FakeUpstream:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        """Reset times and quota windows are read from it."""
        self.accounts: dict[str, Account] = {}
        self.auth = FakeAuth(self.accounts, self.clock)
        self.claude = ClaudeSide(self.accounts, self.clock)
        """Claude subscriptions' OAuth, profile and usage."""
        self.seen: list[Seen] = []
        self.gemini = GeminiSide(self.accounts, self.seen.append)
        self.peers: list[Peer] = []
        """Every request's source address (a proxy's outgoing one when it came through one)."""
        self.app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._note_peer])
        r = self.app.router
        r.add_post("/backend-api/codex/responses", self._codex_responses)
        r.add_get("/backend-api/codex/responses", self._codex_websocket)
        r.add_post("/backend-api/codex/responses/compact", self._compact)
        r.add_post("/v1/responses/compact", self._compact)
        r.add_get("/backend-api/codex/models", self._codex_models)
        r.add_get("/backend-api/wham/usage", self._wham_usage)
        r.add_post("/v1/responses", self._openai_responses)
        r.add_post("/v1/chat/completions", self._chat)
        r.add_get("/v1/models", self._models)
        r.add_post("/v1/messages", self._messages)
        r.add_post("/v1/messages/count_tokens", self._count_tokens)
        self.auth.routes(r)
        self.claude.routes(r)
        self.gemini.routes(r)
        r.add_get("/_fake/requests", self._requests)
        r.add_post("/_fake/accounts/{token}", self._script)
        r.add_get("/_fake/accounts/{token}/auth.json", self._auth_json)

    @web.middleware
    async def _note_peer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = (
            request.headers.get("x-api-key")
            or request.headers.get("x-goog-api-key")
            or request.headers.get("authorization")
            or ""
        )
        account = self.accounts.get(token.removeprefix("Bearer ").strip())
        name = account.name if account is not None else None
        self.peers.append(Peer(request.remote or "", request.path, name))
        return await handler(request)

    def add(
        self,
        token: str,
        *,
        name: str | None = None,
        account_id: str | None = None,
        claude: bool = False,
    ) -> Account:
        """An account answering to `token` (`claude`: a Claude subscription's OAuth token)."""
        now = self.clock.now()
        account = Account(
            name or token, token, account_id, claude=claude, clock=self.clock, windows_start=now
        )
        self.accounts[token] = account
        return account

    def auth_json(self, account: Account, ttl: float = 3600.0, **identity: str) -> dict[str, Any]:
        """A Codex `auth.json` for `account`, as `codex login` writes it."""
        return self.auth.auth_json(account, ttl, **identity)

    @property
    def login_as(self) -> Account | None:
        return self.auth.login_as

    @login_as.setter
    def login_as(self, account: Account | None) -> None:
        self.auth.login_as = account

    def account(self, token: str) -> Account:
        return self.accounts[token]

    def served_by(self) -> list[str | None]:
        return [s.account for s in self.seen]

    # --- helpers -----------------------------------------------------------------------

    def _auth(self, request: web.Request) -> Account | None:
        token = request.headers.get("x-api-key")
        bearer = token is None
        if token is None:
            token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token.count(".") == 2 and expired(token, self.clock.now()):
            return None  # an expired access token is refused, as upstream does
        account = self.accounts.get(token)
        if account is not None and account.claude:
            if not bearer or self.claude.expired(token):
                return None  # an OAuth token is not an API key
            if request.path.startswith("/v1/messages") and OAUTH_BETA not in _betas(request):
                raise oauth_refused()
        return account

    async def _enter(
        self,
        request: web.Request,
        *,
        anthropic: bool = False,
        schema: type[BaseModel] | None = None,
        dialect: str = "openai",
    ) -> tuple[Account, dict[str, Any]]:
        account = self._auth(request)
        raw = await request.read() if request.can_read_body else b""
        try:
            body: dict[str, Any] = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None  # type: ignore[assignment]
        if schema is not None and (found := problem(schema, body)) is not None:
            raise refused(dialect, *found)
        headers = {k.lower(): v for k, v in request.headers.items()}
        name = account.name if account else None
        self.seen.append(
            Seen(request.path, name, body.get("model"), headers, body, raw, request.query_string)
        )
        if account is None:
            raise unauthorized("anthropic" if anthropic else "openai")
        if account.latency:
            await asyncio.sleep(account.latency)
        account.served += 1
        return account, body

    async def _failure(
        self, request: web.Request, failure: Failure, stream: bool, kind: str
    ) -> web.StreamResponse:
        if failure.in_stream and stream:
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            err = failure.body.get("error", failure.body)
            if kind == "anthropic":
                payload = {"type": "error", "error": err}
            else:
                payload = {"type": "error", "status": failure.status, "error": err}
            await response.write(events.sse(payload, "error"))
            await response.write_eof()
            return response
        return web.Response(
            status=failure.status,
            body=orjson.dumps(failure.body),
            headers={"content-type": "application/json", **failure.headers},
        )

    async def _stream(
        self, request: web.Request, account: Account, frames: list[bytes], headers: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", **headers})
        await response.prepare(request)
        try:
            for index, frame in enumerate(frames):
                if account.break_after is not None and index >= account.break_after:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if account.event_delay:
                    await asyncio.sleep(account.event_delay)
                await response.write(frame)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            account.aborted += 1
            raise
        return response

    # --- Codex backend ------------------------------------------------------------------

    async def _codex_responses(self, request: web.Request) -> web.StreamResponse:
        account, body = await self._enter(request, schema=ResponsesBody, dialect="codex")
        if request.headers.get("chatgpt-account-id") != account.account_id:
            err = {
                "error": {"type": "invalid_request_error", "message": "chatgpt-account-id mismatch"}
            }
            return web.json_response(err, status=403)
        if body.get("stream") is not True or body.get("store") is not False:
            detail = {"detail": "Stream must be set to true and store to false"}
            return web.json_response(detail, status=400)
        if refused := next((p for p in CODEX_UNSUPPORTED if p in body), None):
            return web.json_response({"detail": f"Unsupported parameter: {refused}"}, status=400)
        if (failure := account.next_failure(body.get("model"))) is not None:
            return await self._failure(request, failure, True, "codex")
        text = events.structured(body, account.text)
        frames = events.responses_stream(
            scripted(account, body), text, account.deltas, completed_output=False
        )
        with_gated_limits(account, body, frames)
        headers = quota_headers(account, "codex", self.clock.now())
        headers["x-codex-turn-state"] = f"ts-{account.name}-{account.served}"
        return await self._stream(request, account, frames, headers)

    async def _codex_websocket(self, request: web.Request) -> web.StreamResponse:
        """The Codex WebSocket transport: one `response.create` per message, events as frames."""
        account = self._auth(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(
            Seen(
                request.path, account.name if account else None, None, headers, {"websocket": True}
            )
        )
        if account is None:
            return web.json_response({"error": {"message": "unauthorized"}}, status=401)
        if account.ws_refuse is not None:
            failure = usage_limit(self.clock.now() + 600) if account.ws_refuse == 429 else None
            body = failure.body if failure else {"error": {"message": "websocket unavailable"}}
            return web.json_response(body, status=account.ws_refuse)
        if account.latency:
            await asyncio.sleep(account.latency)
        socket = web.WebSocketResponse(max_msg_size=0)
        socket.headers.update(quota_headers(account, "codex", self.clock.now()))
        await socket.prepare(request)
        async for message in socket:
            if message.type != web.WSMsgType.TEXT:
                continue
            body = orjson.loads(message.data)
            raw = message.data.encode()
            self.seen.append(
                Seen(request.path, account.name, body.get("model"), headers, body, raw)
            )
            account.served += 1
            for frame in ws_frames(account, body):
                if account.event_delay:
                    await asyncio.sleep(account.event_delay)
                await socket.send_str(frame)
        return socket

    async def _compact(self, request: web.Request) -> web.StreamResponse:
        account, body = await self._enter(request, schema=ResponsesBody, dialect="codex")
        if (failure := account.next_failure(body.get("model"))) is not None:
            return await self._failure(request, failure, False, "openai")
        summary = {"type": "compaction", "encrypted_content": f"compacted by {account.name}"}
        return web.json_response(
            {"output": [summary], "usage": {"input_tokens": 10, "output_tokens": 2}}
        )

    async def _codex_models(self, request: web.Request) -> web.Response:
        account = self._auth(request)
        if account is None:
            return web.json_response({"error": {"message": "unauthorized"}}, status=401)
        if "client_version" not in request.query:
            return web.json_response({"detail": "client_version is required"}, status=400)
        return web.json_response({"models": [events.codex_model(m) for m in account.models]})

    async def _wham_usage(self, request: web.Request) -> web.Response:
        account = self._auth(request)
        if account is None:
            return web.json_response({"error": {"message": "unauthorized"}}, status=401)
        account.usage_polls += 1
        if account.usage_status != 200:
            return web.json_response({"error": {"message": "refused"}}, status=account.usage_status)
        return web.json_response(wham_usage(account, self.clock.now()))

    # --- OpenAI ---------------------------------------------------------------------------

    async def _openai_responses(self, request: web.Request) -> web.StreamResponse:
        account, body = await self._enter(request, schema=ResponsesBody)
        stream = body.get("stream") is True
        if (failure := account.next_failure()) is not None:
            return await self._failure(request, failure, stream, "openai")
        headers = quota_headers(account, "openai", self.clock.now())
        text = events.structured(body, account.text)
        body = scripted(account, body)
        if stream:
            return await self._stream(
                request, account, events.responses_stream(body, text, account.deltas), headers
            )
        return web.json_response(events.response_object(body, text), headers=headers)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        account, body = await self._enter(request, schema=ChatBody)
        stream = body.get("stream") is True
        if (failure := account.next_failure()) is not None:
            return await self._failure(request, failure, stream, "openai")
        headers = quota_headers(account, "openai", self.clock.now())
        body = scripted(account, body)
        if stream:
            return await self._stream(
                request, account, events.chat_stream(body, account.text, account.deltas), headers
            )
        return web.json_response(events.chat_completion(body, account.text), headers=headers)

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
            for m in ("gpt-5.5", "gpt-4.1")
        ]
        return web.json_response({"object": "list", "data": data})

    # --- Anthropic ------------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        account, body = await self._enter(
            request, anthropic=True, schema=MessagesBody, dialect="anthropic"
        )
        stream = body.get("stream") is True
        if (failure := account.next_failure()) is not None:
            return await self._failure(request, failure, stream, "anthropic")
        headers = quota_headers(account, "anthropic", self.clock.now())
        body = scripted(account, body)
        if stream:
            return await self._stream(
                request,
                account,
                events.anthropic_stream(body, account.text, account.deltas),
                headers,
            )
        return web.json_response(events.anthropic_message(body, account.text), headers=headers)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        account, body = await self._enter(
            request, anthropic=True, schema=CountTokensBody, dialect="anthropic"
        )
        if (failure := account.next_failure()) is not None:
            return await self._failure(request, failure, False, "anthropic")
        words = len(orjson.dumps(body.get("messages")).split())
        return web.json_response(
            {"input_tokens": 3 + words},
            headers=quota_headers(account, "anthropic", self.clock.now()),
        )

    # --- control --------------------------------------------------------------------------

    async def _requests(self, request: web.Request) -> web.Response:
        return web.json_response(
            [{"path": s.path, "account": s.account, "model": s.model} for s in self.seen]
        )

    async def _auth_json(self, request: web.Request) -> web.Response:
        """`GET /_fake/accounts/{token}/auth.json`: a Codex login of that account, as `codex
        login` writes it (for a pool in another process or container to import)."""
        account = self.accounts.get(request.match_info["token"])
        if account is None:
            raise web.HTTPNotFound(text="no such account")
        return web.json_response(self.auth_json(account))

    async def _script(self, request: web.Request) -> web.Response:
        """`POST /_fake/accounts/{token}` with `{"name": …, "usage_limit_seconds": 60, …}`."""
        token = request.match_info["token"]
        spec = await request.json()
        account = self.accounts.get(token) or self.add(
            token, name=spec.get("name"), account_id=spec.get("account_id")
        )
        for key in (
            "primary_used",
            "secondary_used",
            "latency",
            "event_delay",
            "deltas",
            "break_after",
        ):
            if key in spec:
                setattr(account, key, spec[key])
        if seconds := spec.get("usage_limit_seconds"):
            account.fail_next(usage_limit(self.clock.now() + seconds))
        if spec.get("server_error"):
            account.fail_next(server_error())
        return web.json_response({"ok": True})


def main() -> None:
    """`python -m quotapool.testing.fake_upstream --port 9100 --accounts 4` (for benchmarks)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument(
        "--accounts", type=int, default=4, help="tokens tok-0..tok-N-1, accounts acct-0.."
    )
    parser.add_argument("--deltas", type=int, default=5)
    parser.add_argument(
        "--record", action="store_true", help="keep the requests seen for GET /_fake/requests"
    )
    args = parser.parse_args()
    fake = FakeUpstream()
    for i in range(args.accounts):
        fake.add(f"tok-{i}", name=f"account-{i}", account_id=f"acct-{i}").deltas = args.deltas
    if not args.record:
        fake.seen = _Discard()
    web.run_app(fake.app, host=args.host, port=args.port, access_log=None, print=None)


class _Discard(list[Seen]):
    """Keeps nothing (long benchmark runs)."""

    def append(self, item: Seen) -> None:
        pass


if __name__ == "__main__":
    main()
