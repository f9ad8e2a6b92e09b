"""The Chat Completions request as the API accepts it, strict about types (the OpenAI API
refuses a wrong type with a 400 naming the field; so do the translator and the fake). Pure."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Object = dict[str, Any]
Number = float | int


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class Part(Strict):
    type: str
    text: str | None = None
    image_url: str | Object | None = None


class FunctionCall(Strict):
    name: str
    arguments: str | None = None


class ToolCall(Strict):
    id: str | None = None
    type: str | None = None
    function: FunctionCall


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[Part] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class Function(Strict):
    name: str
    description: str | None = None
    parameters: Object | None = None
    strict: bool | None = None


class Tool(Strict):
    type: str
    function: Function | None = None


class ChatBody(Strict):
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = None
    stream_options: Object | None = None
    tools: list[Tool] | None = None
    tool_choice: str | Object | None = None
    parallel_tool_calls: bool | None = None
    n: int | None = None
    temperature: Number | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    response_format: Object | None = None
    reasoning_effort: str | None = None


def problem(schema: type[BaseModel], body: Any) -> tuple[str, str] | None:
    """(field, message) for the first thing the API would refuse in `body`, or None.

    >>> problem(ChatBody, {"model": "m", "messages": [1]})[0]
    'messages[0]'
    """
    try:
        schema.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = [p for p in first["loc"] if not _is_type_tag(p)]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        field = field or "body"
        return field, f"Invalid value for '{field}': {first['msg']}."
    return None


def _is_type_tag(part: Any) -> bool:
    """Pydantic names the union member it tried (`str`, `list[Part]`…) inside a location."""
    return isinstance(part, str) and (
        part in ("str", "int", "float", "bool", "none") or "[" in part or part[:1].isupper()
    )
