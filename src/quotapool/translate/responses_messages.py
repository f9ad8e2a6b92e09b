"""The Responses API (what Codex clients speak, and the hub every translation goes through) on
Anthropic's Messages API. Pure.

`responses_to_messages` rewrites a Responses request as a streamed Messages request;
`MessagesEvents` turns Anthropic's stream events back into Responses events, which a client
adapter (chat, Messages, Responses) then serialises.

Hosted tools (`web_search`, `image_generation`…) have no Messages equivalent: they are left out
and named in the `x-quotapool-dropped` header. Custom tools (the Codex CLI's freeform
`apply_patch`) become tools taking one string, `input`, and come back as custom tool calls.
"""

from __future__ import annotations

import uuid
from typing import Any

from quotapool.translate import TranslationError, as_function, call_arguments
from quotapool.translate.hub_events import Event, Item, ResponseBuilder
from quotapool.upstream.usage import Usage

DEFAULT_MAX_TOKENS = 32_000
"""Anthropic requires an output cap; Responses clients often send none."""
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000}
"""Reasoning effort → Anthropic thinking budget (tokens)."""


def responses_to_messages(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A Responses request as a streamed Messages request, and the hosted tools left out."""
    system = [body["instructions"]] if body.get("instructions") else []
    conversation = _Conversation()
    for index, item in enumerate(_input(body.get("input"))):
        _add_item(conversation, system, index, item)
    if not conversation.messages:
        raise TranslationError("'input' has no message to answer", "input")
    request: dict[str, Any] = {
        "model": body["model"],
        "messages": conversation.messages,
        "max_tokens": int(body.get("max_output_tokens") or DEFAULT_MAX_TOKENS),
        "stream": True,
    }
    if system:
        request["system"] = "\n\n".join(system)
    dropped: list[str] = []
    if tools := body.get("tools"):
        request["tools"] = _tools(tools, dropped)
        if choice := _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls")):
            request["tool_choice"] = choice
        if not request["tools"]:
            del request["tools"]
            request.pop("tool_choice", None)
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            request[name] = body[name]
    if stop := body.get("stop"):
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    effort = (body.get("reasoning") or {}).get("effort")
    if effort in THINKING_BUDGETS:
        budget = THINKING_BUDGETS[effort]
        request["thinking"] = {"type": "enabled", "budget_tokens": budget}
        request["max_tokens"] = max(request["max_tokens"], budget + 1024)
        request.pop("temperature", None)  # Anthropic refuses a temperature with thinking on
    if isinstance(user := body.get("user"), str) and user:
        request["metadata"] = {"user_id": user}
    return request, dropped


def custom_tool_names(body: dict[str, Any]) -> frozenset[str]:
    """Names of the request's custom (freeform) tools: their calls come back as such."""
    tools = body.get("tools") or []
    return frozenset(
        str(t.get("name")) for t in tools if isinstance(t, dict) and t.get("type") == "custom"
    )


class _Conversation:
    """Messages built in order; consecutive blocks of one role share a message (Anthropic
    wants user and assistant to alternate, tool results right after their calls)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def add(self, role: str, block: dict[str, Any]) -> None:
        if self.messages and self.messages[-1]["role"] == role:
            self.messages[-1]["content"].append(block)
        else:
            self.messages.append({"role": role, "content": [block]})


def _input(given: Any) -> list[Any]:
    if isinstance(given, str):
        return [{"type": "message", "role": "user", "content": given}]
    if not isinstance(given, list):
        raise TranslationError("'input' must be a string or an array of items", "input")
    return given


def _add_item(conversation: _Conversation, system: list[str], index: int, item: Any) -> None:
    param = f"input[{index}]"
    if not isinstance(item, dict):
        raise TranslationError("each input item must be an object", param)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role in ("system", "developer"):
            system.append(_text(item.get("content"), param))
        elif role in ("user", "assistant"):
            for block in _blocks(item.get("content"), param):
                conversation.add(role, block)
        else:
            raise TranslationError(f"message role {role!r} is not supported", f"{param}.role")
    elif kind in ("function_call", "custom_tool_call"):
        call: dict[str, Any] = {
            "type": "tool_use",
            "id": item.get("call_id"),
            "name": item.get("name"),
        }
        if kind == "custom_tool_call":
            call["input"] = {"input": str(item.get("input", ""))}
        else:
            call["input"] = call_arguments(item.get("arguments"), param)
        conversation.add("assistant", call)
    elif kind in ("function_call_output", "custom_tool_call_output"):
        result = {"type": "tool_result", "tool_use_id": item.get("call_id")}
        conversation.add("user", {**result, "content": _output(item.get("output"))})
    elif kind != "reasoning":  # reasoning is sealed for the model that wrote it
        raise TranslationError(
            f"input item type {kind!r} cannot be sent to an Anthropic key", f"{param}.type"
        )


def _output(output: Any) -> str | list[dict[str, Any]]:
    if isinstance(output, list):
        return [
            {"type": "text", "text": str(part.get("text", ""))}
            for part in output
            if isinstance(part, dict) and part.get("type") in ("input_text", "output_text")
        ]
    return str(output if output is not None else "")


def _text(content: Any, param: str) -> str:
    return "".join(b["text"] for b in _blocks(content, param) if b["type"] == "text")


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise TranslationError("content must be a string or an array of parts", f"{param}.content")
    blocks = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal"):
            assert isinstance(part, dict)
            blocks.append(
                {"type": "text", "text": str(part.get("text") or part.get("refusal", ""))}
            )
        elif kind == "input_image":
            assert isinstance(part, dict)
            blocks.append(_image(part, f"{param}.content[{index}]"))
        else:
            raise TranslationError(
                f"content part type {kind!r} cannot be sent to an Anthropic key",
                f"{param}.content[{index}]",
            )
    return blocks


def _image(part: dict[str, Any], param: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise TranslationError(
            "an input_image needs an image_url (file ids are not kept here)", param
        )
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").split(";")[0] or "image/png"
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _tools(tools: list[Any], dropped: list[str]) -> list[dict[str, Any]]:
    converted = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise TranslationError("each tool must be an object", f"tools[{index}]")
        if (function := as_function(tool)) is None:
            dropped.append(f"tools[{index}] ({tool.get('type')})")
            continue
        name, description, schema = function
        converted.append({"name": name, "description": description, "input_schema": schema})
    return converted


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    chosen: dict[str, Any]
    if choice == "required":
        chosen = {"type": "any"}
    elif choice == "none":
        chosen = {"type": "none"}
    elif isinstance(choice, dict) and choice.get("name"):
        chosen = {"type": "tool", "name": choice["name"]}
    elif parallel is False:
        chosen = {"type": "auto"}
    else:
        return None
    if parallel is False and chosen["type"] != "none":
        chosen["disable_parallel_tool_use"] = True
    return chosen


class MessagesEvents:
    """Anthropic stream events in; the Responses events they amount to out."""

    def __init__(self, custom_tools: frozenset[str] = frozenset()) -> None:
        self.custom_tools = custom_tools
        self.build = ResponseBuilder("resp_" + uuid.uuid4().hex)
        self._items: dict[int, Item] = {}
        """Anthropic block index → the item it streams into."""
        self._input = self._cached = self._output = 0
        self._stop_reason: str | None = None
        self.finished = False

    def _count(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        if isinstance(n := usage.get("input_tokens"), int):
            self._input = n + int(usage.get("cache_creation_input_tokens") or 0)
        if isinstance(n := usage.get("cache_read_input_tokens"), int):
            self._cached = n
        if isinstance(n := usage.get("output_tokens"), int):
            self._output = n

    def end(self) -> list[Event]:
        """Nothing more: the answer completed at `message_stop` (or never did)."""
        return []

    def feed(self, event: dict[str, Any]) -> list[Event]:  # noqa: PLR0911
        index = event.get("index")
        match event.get("type"):
            case "message_start":
                self._count((event.get("message") or {}).get("usage"))
                return [self.build.created()]
            case "content_block_start" if isinstance(index, int):
                return self._start(index, event.get("content_block") or {})
            case "content_block_delta" if index in self._items:
                delta = event.get("delta") or {}
                text = delta.get("text") or delta.get("thinking") or delta.get("partial_json")
                return self.build.delta(self._items[index], str(text or ""))
            case "content_block_stop" if index in self._items:
                return self.build.close(self._items.pop(index))
            case "message_delta":
                self._count(event.get("usage"))
                self._stop_reason = (event.get("delta") or {}).get("stop_reason")
                return []
            case "message_stop":
                self.finished = True
                done = [e for item in self._items.values() for e in self.build.close(item)]
                self._items.clear()
                usage = Usage(self._input + self._cached, self._output, self._cached)
                return [*done, self.build.ended(self._stop_reason == "max_tokens", usage)]
            case "error":
                error = event.get("error")
                return [{"type": "error", "error": error if isinstance(error, dict) else {}}]
        return []

    def _start(self, index: int, block: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        kind = block.get("type")
        if kind == "text":
            self._items[index] = self.build.open("message", events)
        elif kind == "tool_use":
            name = str(block.get("name"))
            call = "custom_tool_call" if name in self.custom_tools else "function_call"
            self._items[index] = self.build.open(call, events, call_id=block.get("id"), name=name)
        elif kind in ("thinking", "redacted_thinking"):
            self._items[index] = self.build.open("reasoning", events)
        return events
