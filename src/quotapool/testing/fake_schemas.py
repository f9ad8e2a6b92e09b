"""The request bodies the real APIs accept, as strict as they are about types: a body they
would refuse gets a 400 naming the field (in each API's own error shape), never a crash."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from quotapool.upstream.chat_schema import ChatBody, problem

__all__ = ["ChatBody", "CountTokensBody", "MessagesBody", "ResponsesBody", "problem"]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


Number = float | int
Object = dict[str, Any]


class _Typed(_Body):
    type: str


class _Item(_Body):
    type: str | None = None
    role: str | None = None
    content: str | list[Object] | None = None


class ResponsesBody(_Body):
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


class _AnthropicMessage(_Body):
    role: Literal["user", "assistant"]
    content: str | list[_Typed]


class CountTokensBody(_Body):
    model: str
    messages: list[_AnthropicMessage]
    system: str | list[_Typed] | None = None
    tools: list[Object] | None = None
    tool_choice: Object | None = None
    thinking: Object | None = None


class MessagesBody(_Body):
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
