"""Which translation serves a client API on an upstream API: a table keyed by (client API,
upstream API). Every translation goes through the Responses API as its hub: a client's body
is rewritten as a Responses request, that request as the upstream's; the upstream's events
are read back as Responses events, and those serialised in the client's API. So each API
needs one translator to the hub and one back, not one per pair. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from quotapool.domain.api import Api, Route
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.request import Unfit
from quotapool.translate import CODEX_ACCOUNTS, StreamAdapter, refuse, unsupported, without
from quotapool.translate.chat_responses import (
    CHAT_REFUSED,
    ONE_CHOICE,
    ChatStreamAdapter,
    chat_request_to_responses,
)
from quotapool.translate.gemini_responses import (
    CARRIED_ELSEWHERE,
    ON_CODEX,
    SAFETY,
    TOP_K,
    UNSAID_ON_CODEX,
    GeminiStreamAdapter,
    flat,
    gemini_to_responses,
    without_fields,
)
from quotapool.translate.messages_responses import REFUSED as MESSAGES_ON_CODEX
from quotapool.translate.messages_responses import (
    MessagesStreamAdapter,
    messages_to_responses,
    wants_thinking,
)
from quotapool.translate.responses_chat import ChatEvents, responses_to_chat
from quotapool.translate.responses_gemini import GeminiEvents, responses_to_gemini
from quotapool.translate.responses_messages import (
    MessagesEvents,
    custom_tool_names,
    responses_to_messages,
)
from quotapool.translate.responses_stream import ResponsesStreamAdapter
from quotapool.upstream.usage import Usage


def upstream_of(credential: Credential, route: Route) -> Api:
    if credential.kind is Kind.CODEX:
        return Api.CODEX
    return credential.upstream_api(route)


WHO = {
    Api.CODEX: CODEX_ACCOUNTS,
    Api.RESPONSES: "OpenAI-compatible keys on the Responses API",
    Api.CHAT: 'OpenAI-compatible keys with only the chat API (apis = ["chat"])',
    Api.MESSAGES: "Anthropic keys",
    Api.GEMINI: "Gemini keys",
}
"""How a refusal names the credentials that cannot honour a parameter."""

STATEFUL = {
    "previous_response_id": "continuing a response quotapool did not relay; send the whole "
    "conversation as input",
    "conversation": "server-side conversations",
    "background": "background responses",
    "prompt": "stored prompts",
}
"""Responses parameters that need the upstream's own storage."""

CODEX_RESPONSES_REFUSED = {
    "max_output_tokens": "an output cap",
    "temperature": "sampling temperature",
    "top_p": "nucleus sampling",
}
"""What the Codex backend answers 400 "Unsupported parameter" to on its Responses API (the
Codex transport refuses it, or drops it when lenient)."""


class Events(Protocol):
    """Reads an upstream API's stream events as Responses events."""

    @property
    def finished(self) -> bool:
        """The upstream said the answer is complete."""
        ...

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]: ...

    def end(self) -> list[dict[str, Any]]: ...


ClientAdapter = Callable[[str, dict[str, Any], int], StreamAdapter]
"""(model, client body, created) → the adapter that serialises Responses events for it."""


def _chat_client(model: str, body: dict[str, Any], created: int) -> StreamAdapter:
    options = body.get("stream_options")
    include = isinstance(options, dict) and options.get("include_usage") is True
    return ChatStreamAdapter(model, include_usage=include, created=created)


def _messages_client(model: str, body: dict[str, Any], _created: int) -> StreamAdapter:
    return MessagesStreamAdapter(model, thinking=wants_thinking(body))


def _responses_client(model: str, _body: dict[str, Any], _created: int) -> StreamAdapter:
    return ResponsesStreamAdapter(model)


def _gemini_client(model: str, body: dict[str, Any], _created: int) -> StreamAdapter:
    config = flat(body).get("generationConfig")
    thinking = config.get("thinkingConfig") if isinstance(config, dict) else None
    thoughts = isinstance(thinking, dict) and bool(thinking.get("includeThoughts"))
    return GeminiStreamAdapter(model, thoughts=thoughts)


def _chat_to_hub(body: dict[str, Any], _session: str | None) -> dict[str, Any]:
    return chat_request_to_responses(body)


def _codex_body(hub: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The ChatGPT backend takes no output cap (Claude Code always sends one; the answer is
    as long as the model makes it) and nothing that is not Responses."""
    return without(hub, ["max_output_tokens", "stop", "top_k", "user"]), []


def _responses_body(hub: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return without(hub, ["stop", "top_k"]), []


def _gemini_codex_body(hub: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A Gemini client's sampling controls (the Gemini CLI always sends them) are left out on
    the ChatGPT backend, which refuses them (named as dropped: `UNCARRIED`)."""
    body, left_out = _codex_body(hub)
    return without(body, ["temperature", "top_p"]), left_out


@dataclass(frozen=True, slots=True)
class Translation:
    refused: Mapping[str, str]
    """Client parameters the upstream cannot honour: a 400 names them (lenient: left out)."""
    to_hub: Callable[[dict[str, Any], str | None], dict[str, Any]] | None
    """Client body (and conversation id) → Responses request; None: the client's is one."""
    from_hub: Callable[[dict[str, Any]], tuple[dict[str, Any], list[str]]]
    """Responses request → the upstream's body, and what it had to leave out."""
    client: ClientAdapter
    events: Callable[[frozenset[str]], Events] | None
    """Reads the upstream's events as Responses events (given the custom tools' names);
    None: they are Responses events."""


TABLE: dict[tuple[Route, Api], Translation] = {
    (Route.CHAT, Api.CODEX): Translation(
        CHAT_REFUSED, _chat_to_hub, _codex_body, _chat_client, None
    ),
    (Route.CHAT, Api.RESPONSES): Translation(
        {**ONE_CHOICE, "stop": "stop sequences"},
        _chat_to_hub,
        _responses_body,
        _chat_client,
        None,
    ),
    (Route.CHAT, Api.MESSAGES): Translation(
        ONE_CHOICE,
        _chat_to_hub,
        responses_to_messages,
        _chat_client,
        MessagesEvents,
    ),
    (Route.MESSAGES, Api.CODEX): Translation(
        MESSAGES_ON_CODEX, messages_to_responses, _codex_body, _messages_client, None
    ),
    (Route.MESSAGES, Api.RESPONSES): Translation(
        {"top_k": "top-k sampling", "stop_sequences": "stop sequences"},
        messages_to_responses,
        _responses_body,
        _messages_client,
        None,
    ),
    (Route.MESSAGES, Api.CHAT): Translation(
        {"top_k": "top-k sampling"},
        messages_to_responses,
        responses_to_chat,
        _messages_client,
        ChatEvents,
    ),
    (Route.RESPONSES, Api.CHAT): Translation(
        STATEFUL, None, responses_to_chat, _responses_client, ChatEvents
    ),
    (Route.RESPONSES, Api.MESSAGES): Translation(
        STATEFUL, None, responses_to_messages, _responses_client, MessagesEvents
    ),
    (Route.RESPONSES, Api.GEMINI): Translation(
        STATEFUL, None, responses_to_gemini, _responses_client, GeminiEvents
    ),
    (Route.CHAT, Api.GEMINI): Translation(
        ONE_CHOICE, _chat_to_hub, responses_to_gemini, _chat_client, GeminiEvents
    ),
    (Route.MESSAGES, Api.GEMINI): Translation(
        {}, messages_to_responses, responses_to_gemini, _messages_client, GeminiEvents
    ),
    (Route.GEMINI, Api.CODEX): Translation(
        ON_CODEX, gemini_to_responses, _gemini_codex_body, _gemini_client, None
    ),
    (Route.GEMINI, Api.RESPONSES): Translation(
        CARRIED_ELSEWHERE, gemini_to_responses, _responses_body, _gemini_client, None
    ),
    (Route.GEMINI, Api.CHAT): Translation(
        CARRIED_ELSEWHERE, gemini_to_responses, responses_to_chat, _gemini_client, ChatEvents
    ),
    (Route.GEMINI, Api.MESSAGES): Translation(
        CARRIED_ELSEWHERE,
        gemini_to_responses,
        responses_to_messages,
        _gemini_client,
        MessagesEvents,
    ),
}
"""Pairs not here are the same API on both sides (passed through), Responses on Codex
accounts (the Codex transport adapts it), or not served (`Credential.routes`)."""


UNCARRIED: dict[tuple[Route, Api], Mapping[str, str]] = {
    (Route.CHAT, Api.CODEX): {"metadata": "tags", "store": "stored completions"},
    (Route.MESSAGES, Api.CODEX): {"metadata": "the end user's id"},
    (Route.GEMINI, Api.CODEX): UNSAID_ON_CODEX,
    (Route.GEMINI, Api.RESPONSES): TOP_K,
    (Route.GEMINI, Api.CHAT): TOP_K,
    (Route.GEMINI, Api.MESSAGES): SAFETY,
}
"""What the ChatGPT backend has no place for: left out, and named in `x-quotapool-dropped`."""


def translation(route: Route, upstream: Api) -> Translation | None:
    return TABLE.get((route, upstream))


_AS_IS_REFUSED: dict[tuple[Route, Api], Mapping[str, str]] = {
    (Route.RESPONSES, Api.CODEX): {
        **CODEX_RESPONSES_REFUSED,
        # (a continuation quotapool relayed arrives here expanded, without it)
        "previous_response_id": STATEFUL["previous_response_id"],
    },
}
"""What the pairs served without a translation cannot carry either."""
REFUSABLE: dict[Route, frozenset[str]] = {
    route: frozenset(
        name
        for (on, _), refused in (
            *_AS_IS_REFUSED.items(),
            *((pair, t.refused) for pair, t in TABLE.items()),
        )
        if on is route
        for name in refused
    )
    for route in Route
}
"""Per client API, every parameter some credential cannot honour: a request with none of them
fits any credential."""
NEVER_DROPPED = frozenset({"previous_response_id"})
"""Refused even when lenient: without it the answer would forget the conversation."""


def cannot_carry(
    route: Route, upstream: Api, body: Mapping[str, Any], *, lenient: bool
) -> Unfit | None:
    """What in `body` a credential spoken to in `upstream` cannot honour (lenient: only what
    is never dropped); None when it can serve the request."""
    entry = TABLE.get((route, upstream))
    refused = entry.refused if entry is not None else _AS_IS_REFUSED.get((route, upstream))
    if not refused:
        return None
    if route is Route.GEMINI:
        body = flat(body)
    found = [n for n in unsupported(body, refused) if not lenient or n in NEVER_DROPPED]
    if not found:
        return None
    named = ", ".join(f"{name} ({refused[name]})" for name in found)
    return Unfit(tuple(found), f"{named}, which {WHO[upstream]} do not support")


@dataclass(frozen=True, slots=True)
class Translated:
    """A client body as the upstream's, with what was left out (named in a header)."""

    body: dict[str, Any]
    dropped: tuple[str, ...]
    adapter: Callable[[int, str], StreamAdapter]
    """(created, the client's model) → the adapter that turns the upstream's events into the
    client's stream."""


def translate(
    route: Route,
    upstream: Api,
    body: dict[str, Any],
    *,
    session: str | None = None,
    lenient: bool = False,
) -> Translated:
    """`body` (a `route` request) for `upstream`; a TranslationError names what cannot be."""
    entry = TABLE[(route, upstream)]
    view = flat(body) if route is Route.GEMINI else body  # (its generationConfig too)
    dropped = unsupported(view, entry.refused) if lenient else []
    if not lenient:
        refuse(view, entry.refused, WHO[upstream])
    body = without_fields(body, dropped) if route is Route.GEMINI else without(body, dropped)
    hub = entry.to_hub(body, session) if entry.to_hub is not None else body
    sent, left_out = entry.from_hub(hub)
    custom = custom_tool_names(hub)

    def adapter(created: int, model: str) -> StreamAdapter:
        client = entry.client(model, body, created)
        if entry.events is None:
            return client
        return Bridged(entry.events(custom), client)

    unsaid = unsupported(view, UNCARRIED.get((route, upstream), {}))
    return Translated(sent, (*dropped, *left_out, *unsaid), adapter)


class Bridged:
    """Another API's events → Responses events → the client's stream."""

    def __init__(self, events: Events, client: StreamAdapter) -> None:
        self.events = events
        self.client = client
        self.usage: Usage | None = None

    @property
    def finished(self) -> bool:
        return self.client.finished or self.events.finished

    def _fed(self, events: list[dict[str, Any]]) -> bytes:
        out = b"".join(self.client.feed(event) for event in events)
        self.usage = self.client.usage or self.usage
        return out

    def feed(self, payload: dict[str, Any]) -> bytes:
        return self._fed(self.events.feed(payload))

    @property
    def tail(self) -> bytes:
        return self._fed(self.events.end()) + self.client.tail

    def completion(self) -> dict[str, Any]:
        self._fed(self.events.end())
        return self.client.completion()


def final_response(adapter: StreamAdapter) -> dict[str, Any] | None:
    """The Responses object a Responses client was given from another API's events (what it
    may continue from), if that is what `adapter` served."""
    client = adapter.client if isinstance(adapter, Bridged) else adapter
    return client.response if isinstance(client, ResponsesStreamAdapter) else None
