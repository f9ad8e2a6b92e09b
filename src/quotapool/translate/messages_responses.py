"""Anthropic Messages clients (Claude Code, the Anthropic SDKs) to and from the Responses API,
the hub of every translation (`translate.table`). Pure.

`messages_to_responses` rewrites the request; `MessagesStreamAdapter` turns Responses events
into Anthropic's stream (`message_start` … `message_stop`), or into one `message` object.

What needs no equivalent: `cache_control` (upstreams cache prefixes by themselves, keyed by the
session), `context_management`, `metadata`. Document blocks are refused with a 400 naming them;
which sampling controls each upstream refuses is the table's business.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from quotapool.translate import CODEX_ACCOUNTS, TranslationError
from quotapool.upstream.usage import Usage, parse_usage

BILLING_HEADER = "x-anthropic-billing-header:"
"""Claude Code's first system block: a per-run stamp, not a prompt. Sent on, it would change
the prompt prefix with every run and defeat prefix caching."""
REFUSED = {
    "temperature": "sampling temperature",
    "top_p": "nucleus sampling",
    "top_k": "top-k sampling",
    "stop_sequences": "stop sequences",
}
"""Parameters the Responses API of Codex accounts cannot honour (it would ignore or refuse
them); a 400 says so instead of dropping them silently. (`max_tokens` is not among them: Claude
Code always sends one, and the answer is as long as the model makes it.)"""
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "xhigh", "xhigh": "xhigh"}


def messages_to_responses(body: dict[str, Any], session: str | None = None) -> dict[str, Any]:
    """A Messages request as a streamed, unstored Responses request, the hub every translation
    goes through (`session`: the client's conversation id, the upstream's prompt cache key).
    What the upstream cannot honour was refused or left out before; `top_k` and
    `stop_sequences` are carried (as `top_k`, `stop`) for the next step."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("'messages' must be a non-empty array", "messages")
    items: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        items.extend(_items(index, message))
    request: dict[str, Any] = {
        "model": body["model"],
        "instructions": _instructions(body.get("system")),
        "input": items,
        "stream": True,
        "store": False,
    }
    if tools := body.get("tools"):
        request["tools"] = [_tool(i, t) for i, t in enumerate(tools)]
        request["tool_choice"], parallel = _tool_choice(body.get("tool_choice"))
        request["parallel_tool_calls"] = parallel
    if (reasoning := _reasoning(body)) is not None:
        request["reasoning"] = reasoning
    if session:
        request["prompt_cache_key"] = session
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            request[name] = body[name]
    if body.get("stop_sequences"):
        request["stop"] = body["stop_sequences"]
    if isinstance(cap := body.get("max_tokens"), int):
        request["max_output_tokens"] = cap
    return request


def _instructions(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise TranslationError("'system' must be a string or an array of text blocks", "system")
    texts = []
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise TranslationError("system blocks must be text blocks", f"system[{index}]")
        text = str(block.get("text", ""))
        if not text.startswith(BILLING_HEADER):
            texts.append(text)
    return "\n\n".join(texts)


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise TranslationError("content must be a string or an array of blocks", param)
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise TranslationError("content blocks must be objects", f"{param}[{index}]")
    return content


def _items(index: int, message: Any) -> list[dict[str, Any]]:
    param = f"messages[{index}]"
    if not isinstance(message, dict):
        raise TranslationError("each message must be an object", param)
    role = message.get("role")
    blocks = _blocks(message.get("content"), f"{param}.content")
    if role == "system":  # Claude Code puts one mid-conversation: the developer's words
        text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        return [_message("developer", [{"type": "input_text", "text": text}])]
    if role == "user":
        return _user_items(blocks, param)
    if role == "assistant":
        return _assistant_items(blocks, param)
    raise TranslationError(f"message role {role!r} is not supported", f"{param}.role")


def _message(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": content}


def _user_items(blocks: list[dict[str, Any]], param: str) -> list[dict[str, Any]]:
    """Tool results become function outputs (first: they answer the previous turn's calls);
    text and images stay the user's words."""
    outputs: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "input_text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append({"type": "input_image", "image_url": _image_url(block, param, index)})
        elif kind == "tool_result":
            outputs.append(
                {
                    "type": "function_call_output",
                    "call_id": block.get("tool_use_id"),
                    "output": _tool_output(block),
                }
            )
        else:
            raise TranslationError(
                f"content block type {kind!r} is not supported by {CODEX_ACCOUNTS}",
                f"{param}.content[{index}]",
            )
    return outputs + ([_message("user", parts)] if parts else [])


def _image_url(block: dict[str, Any], param: str, index: int) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source.get("type") == "url":
        return str(source.get("url", ""))
    raise TranslationError("image source must be base64 or url", f"{param}.content[{index}]")


def _tool_output(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        content = "\n".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    text = str(content or "")
    return f"Error: {text}" if block.get("is_error") else text


def _assistant_items(blocks: list[dict[str, Any]], param: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            part = {"type": "output_text", "text": str(block.get("text", ""))}
            items.append(_message("assistant", [part]))
        elif kind == "tool_use":
            items.append(
                {
                    "type": "function_call",
                    "call_id": block.get("id"),
                    "name": block.get("name"),
                    "arguments": orjson.dumps(block.get("input") or {}).decode(),
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed for Anthropic only: another model cannot read it back
        else:
            raise TranslationError(
                f"assistant content block type {kind!r} is not supported here",
                f"{param}.content[{index}]",
            )
    return items


def _tool(index: int, tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or "input_schema" not in tool:
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise TranslationError(
            f"tool type {kind!r} (an Anthropic server tool) is not available on Codex (ChatGPT) "
            "accounts; give it an input_schema as a client tool",
            f"tools[{index}]",
        )
    schema = {k: v for k, v in (tool.get("input_schema") or {}).items() if k != "$schema"}
    return {
        "type": "function",
        "name": tool.get("name"),
        "description": tool.get("description", ""),
        "parameters": schema or {"type": "object", "properties": {}},
        "strict": False,
    }


def _tool_choice(choice: Any) -> tuple[Any, bool]:
    """Responses' `tool_choice` and `parallel_tool_calls` for an Anthropic `tool_choice`."""
    if not isinstance(choice, dict):
        return "auto", True
    parallel = not choice.get("disable_parallel_tool_use", False)
    match choice.get("type"):
        case "any":
            return "required", parallel
        case "tool":
            return {"type": "function", "name": choice.get("name")}, parallel
        case "none":
            return "none", parallel
        case _:
            return "auto", parallel


def _reasoning(body: dict[str, Any]) -> dict[str, Any] | None:
    """Thinking as reasoning: `output_config.effort` when given, else from the budget."""
    thinking = body.get("thinking") or {}
    effort = (body.get("output_config") or {}).get("effort")
    if thinking.get("type") == "disabled":
        return None
    if effort is None and thinking.get("type") == "enabled":
        budget = int(thinking.get("budget_tokens") or 0)
        effort = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    if effort is None:
        return None
    reasoning: dict[str, Any] = {"effort": EFFORTS.get(str(effort), "medium")}
    if thinking.get("type") in ("enabled", "adaptive") and thinking.get("display") != "omitted":
        reasoning["summary"] = "auto"
    return reasoning


def wants_thinking(body: dict[str, Any]) -> bool:
    return (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def anthropic_usage(usage: Usage | None) -> dict[str, int]:
    """Anthropic counts cached input apart from the rest; OpenAI counts it within."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cached_tokens),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


class MessagesStreamAdapter:
    """Feeds on Responses events; emits Anthropic stream events, or one message at the end."""

    tail = b""

    def __init__(self, model: str, *, thinking: bool = False) -> None:
        self.model = model
        self.thinking = thinking
        """The client asked for thinking: reasoning becomes thinking blocks (else unseen)."""
        self.id = "msg_" + uuid.uuid4().hex[:24]
        self.blocks: list[dict[str, Any]] = []
        """The content blocks so far, as the non-streaming message holds them."""
        self._open: dict[str, int] = {}
        """Upstream item id → index of the block it streams into."""
        self._arguments_seen: set[str] = set()
        self.usage: Usage | None = None
        self.stop_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    def feed(self, payload: dict[str, Any]) -> bytes:  # noqa: C901, PLR0911
        match payload.get("type"):
            case "response.created":
                message: dict[str, Any] = {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": anthropic_usage(None),
                }
                return _event("message_start", {"message": message})
            case "response.output_item.added":
                return self._start(payload.get("item") or {})
            case "response.output_text.delta":
                return self._delta(payload, "text_delta", "text", "text")
            case "response.reasoning_summary_text.delta":
                return self._delta(payload, "thinking_delta", "thinking", "thinking")
            case "response.function_call_arguments.delta":
                self._arguments_seen.add(str(payload.get("item_id")))
                return self._delta(payload, "input_json_delta", "partial_json", None)
            case "response.output_item.done":
                return self._stop(payload.get("item") or {})
            case "response.completed" | "response.incomplete":
                return self._finish(payload.get("response") or {})
            case "response.failed" | "error":
                error = (payload.get("response") or {}).get("error") or payload.get("error") or {}
                said = str(error.get("message") or "the upstream failed")
                return _event("error", {"error": {"type": "api_error", "message": said}})
        return b""

    def _start(self, item: dict[str, Any]) -> bytes:
        kind = item.get("type")
        if kind == "message":
            block: dict[str, Any] = {"type": "text", "text": ""}
        elif kind == "function_call":
            block = {"type": "tool_use", "id": item.get("call_id"), "name": item.get("name")}
            block["input"] = {}
        elif kind == "reasoning" and self.thinking:
            block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            return b""
        index = len(self.blocks)
        self._open[str(item.get("id"))] = index
        self.blocks.append(block)
        return _event("content_block_start", {"index": index, "content_block": block})

    def _delta(
        self, payload: dict[str, Any], kind: str, field: str, accumulate: str | None
    ) -> bytes:
        index = self._open.get(str(payload.get("item_id")))
        if index is None:
            return b""
        delta = str(payload.get("delta", ""))
        if accumulate is not None:
            self.blocks[index][accumulate] += delta
        change = {"type": kind, field: delta}
        return _event("content_block_delta", {"index": index, "delta": change})

    def _stop(self, item: dict[str, Any]) -> bytes:
        item_id = str(item.get("id"))
        index = self._open.pop(item_id, None)
        if index is None:
            return b""
        block = self.blocks[index]
        out = b""
        if block["type"] == "tool_use":
            arguments = str(item.get("arguments") or "{}")
            if item_id not in self._arguments_seen:  # no deltas came: send it whole
                delta = {"type": "input_json_delta", "partial_json": arguments}
                out += _event("content_block_delta", {"index": index, "delta": delta})
            try:
                block["input"] = orjson.loads(arguments)
            except orjson.JSONDecodeError:
                block["input"] = {}
        elif block["type"] == "thinking":
            delta = {"type": "signature_delta", "signature": ""}
            out += _event("content_block_delta", {"index": index, "delta": delta})
        return out + _event("content_block_stop", {"index": index})

    def _finish(self, response: dict[str, Any]) -> bytes:
        out = b"".join(self._stop({"id": item_id}) for item_id in list(self._open))
        self.usage = parse_usage(response.get("usage"))
        incomplete = (response.get("incomplete_details") or {}).get("reason")
        if any(block["type"] == "tool_use" for block in self.blocks):
            self.stop_reason = "tool_use"
        elif incomplete == "max_output_tokens":
            self.stop_reason = "max_tokens"
        else:
            self.stop_reason = "end_turn"
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        out += _event("message_delta", {"delta": delta, "usage": anthropic_usage(self.usage)})
        return out + _event("message_stop", {})

    def completion(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks,
            "stop_reason": self.stop_reason or "end_turn",
            "stop_sequence": None,
            "usage": anthropic_usage(self.usage),
        }
