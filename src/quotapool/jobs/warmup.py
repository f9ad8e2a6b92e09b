"""Warmup: start the quota windows of idle secondaries early.

A subscription window (the 5-hour window of a ChatGPT account) starts on first use. Under a
fill-style strategy the secondaries are idle until the primary runs out, so their windows
start, and reset, late. When such a strategy picks its credential for a request, each
allowlisted other credential of the profile gets one tiny background request, at most once
per TTL, so its window is already running when traffic reaches it.

The rules: the client's request is never delayed or failed by it (it runs as its own task,
with its own timeout); one warmup per credential at a time; a non-2xx answer clears the TTL so
the next selection retries; never for token counts, never for a request pinned to its account;
no round-robin counter moves; the answer feeds the pool like any other (quota readings,
limits); every warmup is a row in the request log, marked as one, with its tokens. Replicas
sharing the pool claim each warmup in Redis first: one per credential per TTL across them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from quotapool.domain.credential import Credential, Kind
from quotapool.domain.request import DEFAULT_PROFILE, Route, RouteRequest
from quotapool.proxy.asgi import Message
from quotapool.proxy.attempt import Attempts
from quotapool.proxy.errors import Dialect
from quotapool.proxy.exchange import Exchange
from quotapool.proxy.record import Record
from quotapool.routing.base import Decision
from quotapool.routing.filters import exclusion
from quotapool.routing.profiles import Profile, Warmup
from quotapool.upstream.base import ClientRequest

log = logging.getLogger(__name__)
PROMPT = "Reply with one word."
_ROUTE = {
    Kind.CODEX: Route.RESPONSES,
    Kind.OPENAI: Route.CHAT,
    Kind.ANTHROPIC: Route.MESSAGES,
    Kind.CLAUDE: Route.MESSAGES,  # (quotapool's own: only where serve_any_client allows it)
    Kind.GEMINI: Route.GEMINI,
}
CHEAP_MODELS = {
    Kind.CODEX: "gpt-5.4-mini",
    Kind.OPENAI: "gpt-4.1-nano",
    Kind.ANTHROPIC: "claude-haiku-4-5",
    Kind.CLAUDE: "claude-haiku-4-5",
    Kind.GEMINI: "gemini-2.5-flash-lite",
}
"""What a probe asks for when neither the operator nor the credential names a model."""


def warmup_payload(kind: Kind, model: str) -> dict[str, Any]:
    """The smallest request each upstream kind takes (the Codex backend only streams)."""
    if kind is Kind.CODEX:
        return {
            "model": model,
            "instructions": PROMPT,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            "stream": True,
            "store": False,
        }
    if kind is Kind.GEMINI:
        contents = [{"role": "user", "parts": [{"text": f"{PROMPT} hi"}]}]
        return {"model": model, "stream": False, "contents": contents,
                "generationConfig": {"maxOutputTokens": 1}}  # fmt: skip
    message = [{"role": "user", "content": f"{PROMPT} hi"}]
    return {"model": model, "max_tokens": 1, "messages": message}


class Claims(Protocol):
    """Warmups claimed across replicas (`store.redis.replication.Replication`)."""

    async def claim_warmup(self, credential_id: str, seconds: float) -> bool: ...

    async def release_warmup(self, credential_id: str) -> None: ...


async def _discard(_message: Message) -> None:
    """Where a warmup's answer goes: nobody waits for it."""


class Warmups:
    """Schedules warmups; bounded state (a TTL entry per allowlisted credential, pruned when
    expired)."""

    def __init__(
        self,
        attempts: Attempts,
        submit: Callable[[dict[str, Any]], None],
        spawn: Callable[[Any, str], object],
        claims: Claims | None = None,
    ) -> None:
        self.attempts = attempts
        self.submit = submit
        self.spawn = spawn
        self._until: dict[str, float] = {}
        """Credential id → end of its TTL (no warmup before)."""
        self._running: set[str] = set()
        self.claims = claims
        """With replicas: a warmup goes ahead only if this replica claims it (no other warmed
        the credential within the TTL)."""
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()

    def after(self, decision: Decision, request: RouteRequest, profile: Profile) -> None:
        """`decision` was made for a client request: warm the profile's idle secondaries."""
        warmup = profile.warmup
        if (
            warmup is None
            or not profile.fills
            or decision.rotation is None  # a probe, or the owner of a continuation
            or request.owner is not None
            or request.route is Route.COUNT_TOKENS
        ):
            return
        model = warmup.model or request.model
        if not model:
            return
        now = self.attempts.clock.now()
        snapshot = profile.view(self.attempts.pool.snapshot())
        for credential in snapshot.credentials:
            cid = credential.id
            if (
                credential.name not in warmup.credentials
                or cid == decision.credential.id
                or cid in self._running
                or self._until.get(cid, 0.0) > now
            ):
                continue
            probe = RouteRequest(_ROUTE[credential.kind], model, profile=profile.name)
            if exclusion(credential, snapshot.state(cid), probe, now) is not None:
                continue  # limited, paused, backing off or not serving the model: not now
            self._until[cid] = now + warmup.ttl_seconds
            self._running.add(cid)
            self.spawn(self._warm(credential, model, profile.name, warmup), f"warmup-{cid}")

    async def _warm(self, credential: Credential, model: str, profile: str, warmup: Warmup) -> None:
        cid, claims = credential.id, self.claims
        try:
            if claims is not None and not await claims.claim_warmup(cid, warmup.ttl_seconds):
                return  # another replica warmed it within the TTL
            record = await self.send(credential, model, profile, warmup.timeout_seconds, "warmup")
        finally:
            self._running.discard(cid)
        if not 200 <= record.status < 300:
            self._until.pop(cid, None)  # the next selection tries again
            if claims is not None:
                await claims.release_warmup(cid)
        now = self.attempts.clock.now()
        self._until = {c: until for c, until in self._until.items() if until > now}

    async def probe(self, credential: Credential, model: str, timeout: float) -> Record:
        """One minimal request pinned to `credential` now, whatever its status says (an
        operator refreshing a limit the upstream has already reset): a 2xx makes it active."""
        return await self.send(credential, model, DEFAULT_PROFILE, timeout, "probe")

    async def send(
        self, credential: Credential, model: str, profile: str, timeout: float, purpose: str
    ) -> Record:
        """The smallest request `credential` takes, its outcome fed to the pool and its row to
        the log (marked as quotapool's own, with `purpose` as its scenario)."""
        attempts = self.attempts
        route = _ROUTE[credential.kind]
        request_id = f"qp-{self._prefix}-w{next(self._ids):08x}"
        record = Record(request_id, attempts.clock.now(), route.value, purpose)
        record.warmup, record.profile, record.scenario = True, profile, purpose
        record.model = record.sent_model = model
        record.credential, record.attempts = credential.name, 1
        payload = warmup_payload(credential.kind, model)
        request = ClientRequest(route, orjson.dumps(payload), payload, model, False, _NO_HEADERS)
        exchange = Exchange(Dialect.OPENAI, _discard, record, [], attempts.clock.now)
        try:
            async with asyncio.timeout(timeout):
                call = attempts.prepare(request, credential)
                failure = await attempts.run(call, credential, request, exchange, [])
            if failure is not None:
                exchange.ended(failure.status, record.error)
        except TimeoutError:
            exchange.ended(504, f"{purpose} timed out after {timeout:g} s")
        except Exception as exc:  # quotapool's own request must never take anything else down
            log.exception("%s of %s failed", purpose, credential.name)
            exchange.ended(500, f"internal error: {type(exc).__name__}")
        finally:
            record.latency_ms = (attempts.clock.now() - record.at) * 1000.0
            self.submit(record.row())
        return record


_NO_HEADERS: Mapping[str, str] = {}
