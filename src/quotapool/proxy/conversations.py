"""Conversations: which account a conversation is bound to, who owns a response id or a turn
state, and the conversations kept to expand a `previous_response_id` the upstream cannot."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import orjson

from quotapool.clock import Clock
from quotapool.domain.api import Api
from quotapool.domain.credential import Credential
from quotapool.domain.request import Route, RouteRequest
from quotapool.jsonlazy import plain
from quotapool.proxy.errors import Dialect, ErrorResponse, error
from quotapool.proxy.exchange import Exchange
from quotapool.proxy.record import Record
from quotapool.routing.affinity import affinity_key, rebinds
from quotapool.routing.filters import comes_back_at
from quotapool.store.affinity import TURN_STATE, AffinityStore
from quotapool.store.base import PoolStore
from quotapool.store.response_items import ResponseItems
from quotapool.translate.table import upstream_of
from quotapool.upstream.base import ClientRequest, Continued

MAX_FALLBACKS = 50_000
"""Conversations remembered on a fallback model (the least recently served forgotten)."""


class Conversations:
    """Bindings (soft: a session's prompt cache), owners (hard: a response id or turn state
    can only be continued where it was made) and kept conversations, for HTTP and WebSocket."""

    def __init__(
        self,
        pool: PoolStore,
        affinity: AffinityStore,
        clock: Clock,
        *,
        sticky: bool = True,
        items: ResponseItems | None = None,
        elsewhere_seconds: float = 0.0,
    ) -> None:
        self.pool = pool
        self.affinity = affinity
        self.clock = clock
        self.sticky = sticky
        """Soft session affinity on (hard ownership of response ids always applies)."""
        self.items = items
        """Conversations behind responses relayed from Codex accounts (None: none kept)."""
        self.elsewhere_seconds = elsewhere_seconds
        """With replicas: how long a continuation waits for what the replica that answered the
        turn before may not have shared yet (its owner: tens of ms; its conversation: written
        to the database within 250 ms). 0: one process, which knows at once."""
        self._fallbacks: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        """(conversation, model asked for) → (the model it fell back to, until when)."""

    def fell_back(self, key: str, model: str) -> str | None:
        """The model the conversation `key` fell back to from `model`, while it stays there."""
        found = self._fallbacks.get((key, model)) if self.sticky else None
        if found is None:
            return None
        if found[1] <= self.clock.now():
            del self._fallbacks[key, model]
            return None
        return found[0]

    def fall_back(
        self, key: str, model: str, fallback: str | None, until: float | None = None
    ) -> None:
        """The conversation `key` was served by `fallback` in place of `model` (None: by the
        model itself again) and stays there until `until` (None: as it was)."""
        fallbacks = self._fallbacks
        if fallback is None or not self.sticky:
            fallbacks.pop((key, model), None)
            return
        if until is None:
            until = fallbacks.get((key, model), ("", self.clock.now()))[1]
        fallbacks[key, model] = (fallback, until)
        fallbacks.move_to_end((key, model))
        if len(fallbacks) > MAX_FALLBACKS:
            fallbacks.popitem(last=False)

    def key(self, request: ClientRequest) -> str:
        return affinity_key(request.headers, request.payload, request.client)

    def bound(self, key: str) -> str | None:
        """The account the conversation `key` is bound to (None without soft affinity)."""
        return self.affinity.bound(key, self.clock.now()) if self.sticky else None

    def bind(self, key: str, credential_id: str) -> None:
        self.affinity.bind(key, credential_id, self.clock.now())

    def own(self, response_id: str, credential_id: str) -> None:
        self.affinity.own(response_id, credential_id, self.clock.now())

    async def expanded(
        self, request: ClientRequest, dialect: Dialect
    ) -> tuple[ClientRequest | ErrorResponse, str | None]:
        """A continuation (`previous_response_id`) of a response relayed from a Codex account,
        with the conversation so far as its input instead: the ChatGPT backend refuses the id
        over HTTP, and a full input can go to another account when the first is exhausted.
        Also the account that produced it (where the conversation's cache is warm)."""
        previous = request.payload.get("previous_response_id")
        if request.route is not Route.RESPONSES or not isinstance(previous, str):
            return request, None
        owner = await self._owner_of(previous)
        context, items = None, self.items
        if items is not None:  # (with replicas, its owner's replica may not have written it yet)
            wait = self.elsewhere_seconds if owner else 0.0
            context = await _found_within(wait, lambda: items.context(previous))
        if context is None:
            producer = self.pool.snapshot().by_id(owner) if owner is not None else None
            if producer is not None and kept_here(producer, Route.RESPONSES):
                message = (
                    f"The conversation before {previous!r} is no longer kept here (after "
                    "response_items_ttl); send the whole conversation as input instead."
                )
                return error(dialect, 400, message, param="previous_response_id"), None
            return request, None
        payload = plain(request.payload).copy()
        del payload["previous_response_id"]
        payload["input"] = context + input_items(payload)
        expanded = replace(
            request,
            body=orjson.dumps(payload),
            payload=payload,
            continued=Continued(previous, len(context)),
        )
        return expanded, owner

    def keep(self, request: ClientRequest, exchange: Exchange) -> None:
        """Keep the conversation behind a response from a Codex account (to expand its id),
        unless the client said it will not continue from it (`store: false`, as the Codex CLI
        does: it sends each turn whole)."""
        if request.payload.get("store") is False:
            return
        output, response_id = exchange.output, exchange.record.response_id
        if self.items is None or not output or not response_id:
            return
        added = input_items(request.payload)
        parent = None
        if (continued := request.continued) is not None:  # only its own turn: the rest is kept
            added, parent = added[continued.context_items :], continued.response_id
        self.items.keep(response_id, added + output, self.clock.now(), parent)

    async def owner(self, request: ClientRequest) -> str | None:
        """The account that must serve a continuation: of its response id or its turn state."""
        previous = request.payload.get("previous_response_id")
        if isinstance(previous, str) and (owner := self.affinity.owner(previous)):
            return owner
        return await self.turn_owner(request.headers.get("x-codex-turn-state"))

    async def turn_owner(self, turn_state: str | None) -> str | None:
        """The account that gave out `turn_state` (with replicas, perhaps a moment ago)."""
        return await self._owner_of(TURN_STATE + turn_state) if turn_state else None

    async def _owner_of(self, response_id: str) -> str | None:
        """The owner of a response id or turn state, waiting `elsewhere_seconds` for one
        another replica may not have shared yet."""

        async def owned() -> str | None:
            return self.affinity.owner(response_id)

        return await _found_within(self.elsewhere_seconds, owned)

    def remember(
        self, key: str, bound: str | None, served_by: str, record: Record, request: RouteRequest
    ) -> None:
        """Own what the account produced; bind the conversation to it unless it only stood in
        for a brief outage of its own account (routing.affinity.rebinds)."""
        now = self.clock.now()
        if record.response_id and request.route is Route.RESPONSES:  # ids a client continues
            self.affinity.own(record.response_id, served_by, now)
        if record.turn_state:
            self.affinity.own(TURN_STATE + record.turn_state, served_by, now)
        back = None
        if bound is not None and bound != served_by:
            back = comes_back_at(self.pool.snapshot().state(bound), request, now)
        if rebinds(bound, served_by, back, now):
            self.affinity.bind(key, served_by, now)


def kept_here(credential: Credential, route: Route) -> bool:
    """Responses on this credential cannot be continued upstream by id (the ChatGPT backend
    refuses `previous_response_id`; chat and Messages upstreams have none): quotapool keeps
    their conversations to expand the id."""
    return route is Route.RESPONSES and upstream_of(credential, route) is not Api.RESPONSES


def input_items(payload: Mapping[str, Any]) -> list[Any]:
    """A Responses request's input as a list of items (a string is one user message)."""
    given = payload.get("input")
    if isinstance(given, str):
        return [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": given}]}
        ]
    return list(given) if isinstance(given, list) else []


T = TypeVar("T")


async def _found_within(seconds: float, find: Callable[[], Awaitable[T | None]]) -> T | None:
    """What `find` finds now or, looking again every 20 ms, within `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (found := await find()) is None and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return found
