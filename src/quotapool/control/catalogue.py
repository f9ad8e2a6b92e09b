"""The models the pool serves: `GET /v1/models`, and the Codex catalogue (`GET
/backend-api/codex/models`) fetched from an account and kept fresh."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from quotapool.clock import Clock
from quotapool.domain.credential import CLAUDE_KINDS, Credential, Kind
from quotapool.net.client import Outbound, read_bounded
from quotapool.proxy.errors import Dialect, error
from quotapool.proxy.relay import TRANSPORT_ERRORS
from quotapool.routing.filters import available
from quotapool.secrets import Secret
from quotapool.store.memory import MemoryPoolStore
from quotapool.tasks import Outage
from quotapool.upstream.codex import codex_auth

log = logging.getLogger(__name__)
MAX_CATALOGUE_BYTES = 4 * 1024 * 1024


def model_ids(credentials: Sequence[Credential], codex_models: Sequence[str]) -> list[str]:
    """Declared models of every credential; Codex accounts without a list serve `codex_models`."""
    seen: dict[str, None] = {}
    for credential in credentials:
        models = credential.models or (codex_models if credential.kind is Kind.CODEX else ())
        seen.update(dict.fromkeys(sorted(models)))
    return list(seen)


CLAUDE_NAMES = ("claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5")
"""Listed for Anthropic keys without a `models` list, and to Anthropic clients when Codex
accounts serve Claude names (any `claude-*` name is taken; these are Claude Code's own)."""


GEMINI_NAMES = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")
"""Listed for Gemini keys without a `models` list, and to Gemini clients (other credentials
serve Gemini names by their stand-ins: `gemini_models`)."""


def served_models(
    credentials: Sequence[Credential], codex_models: Sequence[str], dialect: Dialect
) -> list[str]:
    """The model ids to list to a client of `dialect`."""
    ids = model_ids(credentials, codex_models)
    stand_ins = dialect is Dialect.ANTHROPIC and any(c.kind is Kind.CODEX for c in credentials)
    keys = any(c.kind in CLAUDE_KINDS and not c.models for c in credentials)
    if stand_ins or keys:  # an Anthropic key without a list serves any Claude model
        ids += [name for name in CLAUDE_NAMES if name not in ids]
    gemini_keys = any(c.kind is Kind.GEMINI and not c.models for c in credentials)
    if gemini_keys or dialect is Dialect.GEMINI:  # (other credentials serve them by stand-in)
        ids += [name for name in GEMINI_NAMES if name not in ids]
    return ids


def _openai_model(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": "quotapool"}


def _anthropic_model(model: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model,
        "display_name": model,
        "created_at": "1970-01-01T00:00:00Z",
    }


def _gemini_model(model: str) -> dict[str, Any]:
    methods = ["generateContent", "streamGenerateContent", "countTokens"]
    name = {"name": f"models/{model}", "baseModelId": model, "displayName": model}
    return {**name, "supportedGenerationMethods": methods}


def models_answer(ids: Sequence[str], dialect: Dialect, model: str | None) -> tuple[int, bytes]:
    """`GET /v1/models` (model None) or `GET /v1/models/{model}`, in the client's shape (and
    `GET /v1beta/models…` in Gemini's)."""
    shape = {Dialect.ANTHROPIC: _anthropic_model, Dialect.GEMINI: _gemini_model}.get(
        dialect, _openai_model
    )
    if model is not None:
        if model not in ids:
            message = (
                f"The model {model!r} is not served here; GET /v1/models lists those that are."
            )
            return 404, error(dialect, 404, message, code="model_not_found").body
        return 200, orjson.dumps(shape(model))
    data = [shape(m) for m in ids]
    if dialect is Dialect.GEMINI:
        return 200, orjson.dumps({"models": data})
    if dialect is Dialect.ANTHROPIC:
        first, last = (ids[0], ids[-1]) if ids else (None, None)
        listing = {"data": data, "has_more": False, "first_id": first, "last_id": last}
        return 200, orjson.dumps(listing)
    return 200, orjson.dumps({"object": "list", "data": data})


class CodexCatalogue:
    """Which models each Codex account serves, from its `{codex_base_url}/codex/models`
    (fetched at start, then every `refresh` seconds; an account whose list is not known yet
    serves any model). The Codex CLI's own `GET …/codex/models` is answered from an
    available account, or `{"models": []}` (which it accepts)."""

    def __init__(
        self,
        pool: MemoryPoolStore,
        secrets: Mapping[str, Secret],
        clock: Clock,
        client_version: str,
        outbound: Callable[[str], Outbound],
        refresh: float = 3600.0,
    ) -> None:
        self.pool = pool
        self.outbound = outbound
        """A credential's way out (its egress)."""
        self.secrets = secrets
        self.clock = clock
        self.client_version = client_version
        self.refresh = refresh
        self._fetched: dict[str, float] = {}
        self._outage = Outage(log, "fetching the Codex accounts' model lists")

    async def _get(self, credential: Credential) -> bytes | None:
        headers = codex_auth(self.secrets[credential.id])
        query = urlencode({"client_version": self.client_version})
        url = f"{credential.base_url}/codex/models?{query}"
        async with self.outbound(credential.id).get(url, headers) as response:
            if response.status != 200:
                return None
            return await read_bounded(response.content, MAX_CATALOGUE_BYTES, "the model list")

    def _codex(self) -> list[Credential]:
        snapshot, now = self.pool.snapshot(), self.clock.now()
        return [
            c
            for c in snapshot.credentials
            if c.kind is Kind.CODEX
            and c.id in self.secrets
            and available(snapshot.state(c.id), now)
        ]

    async def fetch(self) -> bytes:
        for credential in self._codex():
            try:
                if (body := await self._get(credential)) is not None:
                    return body
            except TRANSPORT_ERRORS as exc:
                log.warning("codex models from %s failed: %s", credential.name, type(exc).__name__)
        return b'{"models":[]}'

    async def learn(self) -> None:
        """Fetch the list of every Codex account not fetched within `refresh` seconds."""
        now = self.clock.now()
        for credential in self._codex():
            if now - self._fetched.get(credential.id, -self.refresh) < self.refresh:
                continue
            try:
                body = await self._get(credential)
            except TRANSPORT_ERRORS as exc:
                self._outage.failed(exc)
                continue
            self._outage.ok()
            if body is not None and (slugs := model_slugs(body)):
                self._fetched[credential.id] = now
                self.pool.serves(credential.id, slugs)

    async def run(self) -> None:
        """Keep the lists fresh; a new account is fetched within a minute."""
        while True:
            await self.learn()
            await asyncio.sleep(min(60.0, self.refresh))


def model_slugs(body: bytes) -> frozenset[str]:
    """The model ids of a `/codex/models` answer (`{"models": [{"slug": …}]}`) that the API
    serves (`supported_in_api`, when said)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return frozenset()
    models = payload.get("models") if isinstance(payload, dict) else None
    return frozenset(
        str(m["slug"])
        for m in models or []
        if isinstance(m, dict) and m.get("slug") and m.get("supported_in_api", True) is not False
    )
