"""Chat Completions on top of the Responses API (for Codex accounts). Pure.

`chat_request_to_responses` rewrites the request; `ChatStreamAdapter` turns the Responses
event stream into `chat.completion.chunk` events, or into one `chat.completion` object.
"""

from __future__ import annotations

from typing import Any

import orjson

from quotapool.translate import TranslationError
from quotapool.upstream.chat_schema import ChatBody, problem
from quotapool.upstream.usage import Usage, parse_usage


def _text_parts(content: Any, part_type: str, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": part_type, "text": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": part_type, "text": part.get("text", "")})
        elif kind == "image_url" and part_type == "input_text":
            image = part.get("image_url") or {}
            url = image.get("url") if isinstance(image, dict) else image
            detail = image.get("detail") if isinstance(image, dict) else None
            parts.append(
                {"type": "input_image", "image_url": url, **({"detail": detail} if detail else {})}
            )
        else:
            raise TranslationError(f"content part type {kind!r} is not supported here", param)
    return parts


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def _message_items(index: int, message: dict[str, Any]) -> list[dict[str, Any]]:
    role = message.get("role")
    param = f"messages[{index}]"
    content = message.get("content")
    if role in ("user", "system", "developer"):
        mapped = "developer" if role == "system" else role
        return [
            {
                "type": "message",
                "role": mapped,
                "content": _text_parts(content, "input_text", param),
            }
        ]
    if role == "assistant":
        items: list[dict[str, Any]] = []
        if content:
            parts = _text_parts(content, "output_text", param)
            items.append({"type": "message", "role": "assistant", "content": parts})
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments") or "{}",
                }
            )
        return items
    if role == "tool":
        return [
            {
                "type": "function_call_output",
                "call_id": message.get("tool_call_id"),
                "output": _plain_text(content),
            }
        ]
    raise TranslationError(f"message role {role!r} is not supported", f"{param}.role")


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted = []
    for index, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise TranslationError(
                f"tool type {tool.get('type')!r} cannot be used on /v1/chat/completions with this "
                "pool; send it to /v1/responses instead",
                f"tools[{index}]",
            )
        function = tool.get("function") or {}
        converted.append(
            {
                "type": "function",
                "name": function.get("name"),
                "description": function.get("description", ""),
                "parameters": function.get("parameters") or {"type": "object", "properties": {}},
                **({"strict": function["strict"]} if "strict" in function else {}),
            }
        )
    return converted


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "name": (choice.get("function") or {}).get("name")}
    return choice


def _text_format(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = response_format.get("json_schema") or {}
        return {"format": {"type": "json_schema", **schema}}
    if kind == "json_object":
        return {"format": {"type": "json_object"}}
    return None


ONE_CHOICE = {
    "n": "more than one choice",
    "seed": "deterministic sampling",
    "logprobs": "log probabilities",
    "top_logprobs": "log probabilities",
    "logit_bias": "token biases",
    "frequency_penalty": "repetition penalties",
    "presence_penalty": "repetition penalties",
}
"""Chat parameters only a chat upstream honours."""
CHAT_REFUSED = {
    **ONE_CHOICE,
    "temperature": "sampling temperature",
    "top_p": "nucleus sampling",
    "max_tokens": "an output cap: the backend refuses one",
    "max_completion_tokens": "an output cap: the backend refuses one",
    "stop": "stop sequences",
}
"""Chat parameters the Codex backend cannot honour (it refuses or ignores them): a 400 names
each, instead of answering as if it had been honoured."""


def chat_request_to_responses(body: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a chat request as a streamed, unstored Responses request: the hub every
    translation goes through (`translate.table`). What the upstream cannot honour was refused
    or left out before; what the Responses API has no field for (`stop`) is carried under the
    chat name for the next step."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("'messages' must be a non-empty array", "messages")
    if (found := problem(ChatBody, body)) is not None:
        field, message = found
        raise TranslationError(message, field)
    instructions = [
        _plain_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    ]
    items = [
        item
        for i, m in enumerate(messages)
        if m.get("role") not in ("system", "developer")
        for item in _message_items(i, m)
    ]
    request: dict[str, Any] = {
        "model": body["model"],
        "instructions": "\n\n".join(instructions),
        "input": items,
        "stream": True,
        "store": False,
    }
    if tools := body.get("tools"):
        request["tools"] = _tools(tools)
        request["tool_choice"] = _tool_choice(body.get("tool_choice", "auto"))
        request["parallel_tool_calls"] = body.get("parallel_tool_calls", True)
    if effort := body.get("reasoning_effort"):
        request["reasoning"] = {"effort": effort}
    if text := _text_format(body.get("response_format")):
        request["text"] = text
    for name in ("temperature", "top_p", "stop", "user"):
        if body.get(name) is not None:
            request[name] = body[name]
    if (cap := body.get("max_completion_tokens", body.get("max_tokens"))) is not None:
        request["max_output_tokens"] = cap
    return request


def _chat_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


class ChatStreamAdapter:
    """Feeds on Responses events; emits chat chunks (stream) or one completion (not stream)."""

    tail = b"data: [DONE]\n\n"

    def __init__(self, model: str, *, include_usage: bool, created: int) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = created
        self.id = "chatcmpl-pending"
        self.text: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self._call_index: dict[str, int] = {}
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def feed(self, payload: dict[str, Any]) -> bytes:  # noqa: C901, PLR0911, PLR0912
        """One Responses event in; the chat stream bytes it becomes (may be empty)."""
        kind = payload.get("type")
        if kind == "response.created":
            self.id = "chatcmpl-" + str(payload["response"].get("id", "")).removeprefix("resp_")
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "response.output_text.delta":
            delta = str(payload.get("delta", ""))
            self.text.append(delta)
            return self._chunk({"content": delta})
        if kind == "response.output_item.added":
            item = payload.get("item") or {}
            if item.get("type") != "function_call":
                return b""
            index = len(self.tool_calls)
            self._call_index[str(item.get("id"))] = index
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": ""},
            }
            self.tool_calls.append(call)
            return self._chunk({"tool_calls": [{"index": index, **call}]})
        if kind == "response.function_call_arguments.delta":
            index = self._call_index.get(str(payload.get("item_id")), 0)
            if index >= len(self.tool_calls):
                return b""
            delta = str(payload.get("delta", ""))
            self.tool_calls[index]["function"]["arguments"] += delta
            return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta}}]})
        if kind in ("response.completed", "response.incomplete"):
            response = payload.get("response") or {}
            self.usage = parse_usage(response.get("usage"))
            incomplete = (response.get("incomplete_details") or {}).get("reason")
            self.finish_reason = (
                "length"
                if incomplete == "max_output_tokens"
                else "tool_calls"
                if self.tool_calls
                else "stop"
            )
            out = self._chunk({}, self.finish_reason)
            if self.include_usage and self.usage is not None:
                usage_chunk = {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": _chat_usage(self.usage),
                }
                out += b"data: " + orjson.dumps(usage_chunk) + b"\n\n"
            return out
        if kind in ("response.failed", "error"):
            error = (payload.get("response") or {}).get("error") or payload.get("error") or payload
            self.error = {
                "message": str(error.get("message", "upstream error")),
                "type": str(error.get("type") or error.get("code") or "upstream_error"),
            }
            return b"data: " + orjson.dumps({"error": self.error}) + b"\n\n"
        return b""

    def completion(self) -> dict[str, Any]:
        """The whole answer as one `chat.completion` (for non-streaming clients)."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": self.finish_reason or "stop"}
            ],
        }
        if self.usage is not None:
            body["usage"] = _chat_usage(self.usage)
        return body
