"""The request bodies the real APIs accept, as strict as they are about types: a body they
would refuse gets a 400 naming the field (in each API's own error shape), never a crash."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, model_validator

from quotapool.upstream.chat_schema import ChatBody as _ChatBody
from quotapool.upstream.chat_schema import Number, Object, Strict, problem

__all__ = ["ChatBody", "CountTokensBody", "MessagesBody", "ResponsesBody", "problem"]


class ChatBody(_ChatBody):
    """What the OpenAI API (and vLLM, which refuses unknown fields too) takes on
    /chat/completions: no Responses fields (`input`, `instructions`, `max_output_tokens`…),
    and a tool message only answers a call of the assistant message before it."""

    model_config = ConfigDict(strict=True, extra="forbid")
    top_p: Number | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: Object | None = None
    frequency_penalty: Number | None = None
    presence_penalty: Number | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    verbosity: str | None = None

    @model_validator(mode="after")
    def _tool_messages_answer_calls(self) -> ChatBody:
        calls: set[str | None] = set()
        for message in self.messages:
            if message.role == "assistant":
                calls = {call.id for call in message.tool_calls or []}
            elif message.role == "tool" and message.tool_call_id not in calls:
                raise ValueError(
                    "messages with role 'tool' must be a response to a preceding message with "
                    "'tool_calls'"
                )
        return self


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


class _Metadata(Strict):
    model_config = ConfigDict(strict=True, extra="forbid")
    user_id: str | None = None


class MessagesBody(Strict):
    """What the Anthropic API takes on /v1/messages: no unknown fields, user first, tool
    results only for the previous turn's tool uses, a thinking budget of 1,024 tokens or more
    below `max_tokens`, and no temperature but 1 with thinking."""

    model_config = ConfigDict(strict=True, extra="forbid")
    model: str
    max_tokens: int
    messages: list[_AnthropicMessage]
    system: str | list[_Typed] | None = None
    stream: bool | None = None
    tools: list[Object] | None = None
    tool_choice: Object | None = None
    metadata: _Metadata | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    thinking: Object | None = None
    context_management: Object | None = None
    output_config: Object | None = None
    service_tier: str | None = None

    @model_validator(mode="after")
    def _as_anthropic_checks(self) -> MessagesBody:
        if self.messages and self.messages[0].role != "user":
            raise ValueError("first message must use the 'user' role")
        uses: set[Any] = set()
        for message in self.messages:
            blocks = message.content if isinstance(message.content, list) else []
            if message.role == "assistant":
                uses = {getattr(b, "id", None) for b in blocks if b.type == "tool_use"}
            for block in blocks:
                if block.type == "tool_result" and getattr(block, "tool_use_id", None) not in uses:
                    raise ValueError(
                        "unexpected tool_use_id found in tool_result blocks: each tool_result "
                        "block must have a corresponding tool_use block in the previous message"
                    )
        thinking = self.thinking or {}
        if thinking.get("type") == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or not 1024 <= budget < self.max_tokens:
                raise ValueError("thinking.budget_tokens must be ≥ 1024 and less than max_tokens")
            if self.temperature not in (None, 1):
                raise ValueError("temperature may only be set to 1 when thinking is enabled")
        return self
