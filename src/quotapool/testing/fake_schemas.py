"""The request bodies the real APIs accept, as strict as they are about types: a body they
would refuse gets a 400 naming the field (in each API's own error shape), never a crash."""

from __future__ import annotations

from typing import Literal

from quotapool.upstream.chat_schema import ChatBody, Number, Object, Strict, problem

__all__ = ["ChatBody", "CountTokensBody", "MessagesBody", "ResponsesBody", "problem"]


class _Typed(Strict):
    type: str


class _Item(Strict):
    type: str | None = None
    role: str | None = None
    content: str | list[Object] | None = None


class ResponsesBody(Strict):
    model: str
    input: str | list[_Item] | None = None
    instructions: str | None = None
    tools: list[_Typed] | None = None
    tool_choice: str | Object | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    reasoning: Object | None = None
    text: Object | None = None
    include: list[str] | None = None
    prompt_cache_key: str | None = None
    metadata: dict[str, str] | None = None
    temperature: Number | None = None
    max_output_tokens: int | None = None


class _AnthropicMessage(Strict):
    role: Literal["user", "assistant"]
    content: str | list[_Typed]


class CountTokensBody(Strict):
    model: str
    messages: list[_AnthropicMessage]
    system: str | list[_Typed] | None = None
    tools: list[Object] | None = None
    tool_choice: Object | None = None
    thinking: Object | None = None


class MessagesBody(Strict):
    model: str
    max_tokens: int
    messages: list[_AnthropicMessage]
    system: str | list[_Typed] | None = None
    stream: bool | None = None
    tools: list[Object] | None = None
    tool_choice: Object | None = None
    metadata: Object | None = None
    temperature: Number | None = None
    thinking: Object | None = None
