"""The Responses API (the hub every translation goes through) on a Chat Completions upstream:
OpenAI-compatible servers with no Responses API (vLLM, Ollama, OpenRouter…). Pure.

`responses_to_chat` rewrites a Responses request as a streamed chat request (usage asked for);
`ChatEvents` turns the chat chunks back into Responses events. Hosted tools are left out and
named in the `x-quotapool-dropped` header; custom tools become functions taking one string.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from quotapool.translate import TranslationError, as_function
from quotapool.translate.hub_events import Event, Item, ResponseBuilder
from quotapool.upstream.usage import Usage, parse_usage


def responses_to_chat(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A Responses request as a streamed chat request, and the hosted tools left out."""
    system = [body["instructions"]] if body.get("instructions") else []
    messages: list[dict[str, Any]] = []
    given = body.get("input")
    items = (
        [{"type": "message", "role": "user", "content": given}] if isinstance(given, str) else given
    )
    if not isinstance(items, list):
        raise TranslationError("'input' must be a string or an array of items", "input")
    for index, item in enumerate(items):
        _add_item(messages, system, index, item)
    if not messages:
        raise TranslationError("'input' has no message to answer", "input")
    request: dict[str, Any] = {
        "model": body["model"],
        "messages": ([{"role": "system", "content": "\n\n".join(system)}] if system else [])
        + messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    dropped: list[str] = []
    if (tools := body.get("tools")) and (converted := _tools(tools, dropped)):
        request["tools"] = converted
        request["tool_choice"] = _tool_choice(body.get("tool_choice", "auto"))
        if isinstance(parallel := body.get("parallel_tool_calls"), bool):
            request["parallel_tool_calls"] = parallel
    for name in ("temperature", "top_p", "stop", "user"):
        if body.get(name) is not None:
            request[name] = body[name]
    if body.get("max_output_tokens") is not None:
        request["max_tokens"] = body["max_output_tokens"]
    if effort := (body.get("reasoning") or {}).get("effort"):
        request["reasoning_effort"] = effort
    if response_format := _response_format((body.get("text") or {}).get("format")):
        request["response_format"] = response_format
    return request, dropped


def _add_item(messages: list[dict[str, Any]], system: list[str], index: int, item: Any) -> None:
    param = f"input[{index}]"
    if not isinstance(item, dict):
        raise TranslationError("each input item must be an object", param)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        content = _content(item.get("content"), param)
        if role in ("system", "developer"):
            system.append(_text(content))
        elif role == "user":
            messages.append({"role": "user", "content": content})
        elif role == "assistant":
            message = _assistant(messages)
            message["content"] = (message.get("content") or "") + _text(content)
        else:
            raise TranslationError(f"message role {role!r} is not supported", f"{param}.role")
    elif kind in ("function_call", "custom_tool_call"):
        arguments = (
            orjson.dumps({"input": str(item.get("input", ""))}).decode()
            if kind == "custom_tool_call"
            else str(item.get("arguments") or "{}")
        )
        call = {
            "id": item.get("call_id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": arguments},
        }
        _assistant(messages).setdefault("tool_calls", []).append(call)
    elif kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        text = _text(_content(output, param)) if isinstance(output, list) else str(output or "")
        messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
    elif kind != "reasoning":  # reasoning is sealed for the model that wrote it
        raise TranslationError(
            f"input item type {kind!r} cannot be sent to a chat-only upstream", f"{param}.type"
        )


def _assistant(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message being built (a turn's text and tool calls share one)."""
    if not messages or messages[-1]["role"] != "assistant":
        messages.append({"role": "assistant", "content": None})
    return messages[-1]


def _content(content: Any, param: str) -> str | list[dict[str, Any]]:
    """Plain text where the parts are all text (what every chat server takes), else parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError("content must be a string or an array of parts", f"{param}.content")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            assert isinstance(part, dict)
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image" and isinstance(part, dict) and part.get("image_url"):
            image = {
                "url": part["image_url"],
                **({"detail": part["detail"]} if part.get("detail") else {}),
            }
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise TranslationError(
                f"content part type {kind!r} cannot be sent to a chat-only upstream",
                f"{param}.content[{index}]",
            )
    return _joined(parts) if all(p["type"] == "text" for p in parts) else parts


def _text(content: str | list[dict[str, Any]]) -> str:
    return content if isinstance(content, str) else _joined(content)


def _joined(parts: list[dict[str, Any]]) -> str:
    return "".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


def _tools(tools: list[Any], dropped: list[str]) -> list[dict[str, Any]]:
    converted = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise TranslationError("each tool must be an object", f"tools[{index}]")
        if (declared := as_function(tool)) is None:
            dropped.append(f"tools[{index}] ({tool.get('type')})")
            continue
        name, description, schema = declared
        function = {"name": name, "description": description, "parameters": schema}
        if tool.get("type") == "function" and "strict" in tool:
            function["strict"] = tool["strict"]
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice if choice in ("auto", "none", "required") else "auto"


def _response_format(text_format: Any) -> dict[str, Any] | None:
    if not isinstance(text_format, dict):
        return None
    if text_format.get("type") == "json_schema":
        schema = {k: v for k, v in text_format.items() if k != "type"}
        return {"type": "json_schema", "json_schema": schema}
    if text_format.get("type") == "json_object":
        return {"type": "json_object"}
    return None


class ChatEvents:
    """Chat chunks in; the Responses events they amount to out. The answer completes at the
    usage chunk after the finish (asked for), or at the end of the stream."""

    def __init__(self, custom_tools: frozenset[str] = frozenset()) -> None:
        self.custom_tools = custom_tools
        self.build = ResponseBuilder("resp_pending")
        self._open: dict[str, Item] = {}
        """Open items by key: "text", "reasoning", "call:N" (N: the chunk's tool call index)."""
        self._usage: Usage | None = None
        self._finish: str | None = None
        self._started = self._completed = False

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if isinstance(error := chunk.get("error"), dict):
            return [{"type": "error", "error": error}]
        events: list[Event] = []
        if not self._started and (chunk.get("choices") or chunk.get("id")):
            self._started = True
            chat_id = str(chunk.get("id") or uuid.uuid4().hex).removeprefix("chatcmpl-")
            self.build.response_id = "resp_" + chat_id
            events.append(self.build.created())
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                events += self._choice(choice)
        if (usage := parse_usage(chunk.get("usage"))) is not None:
            self._usage = usage
            events += self.end()
        return events

    def end(self) -> list[Event]:
        """The completion, once: at the usage chunk, or when the stream ends without one."""
        if self._completed or not self.finished:
            return []
        self._completed = True
        return [self.build.ended(self._finish == "length", self._usage)]

    def _choice(self, choice: dict[str, Any]) -> list[Event]:
        delta = choice.get("delta") or {}
        events: list[Event] = []
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thought, str) and thought:
            events += self.build.delta(self._item("reasoning", "reasoning", events), thought)
        if isinstance(text := delta.get("content"), str) and text:
            self._close("reasoning", events)
            events += self.build.delta(self._item("text", "message", events), text)
        for call in delta.get("tool_calls") or []:
            key = f"call:{call.get('index', 0)}"
            function = call.get("function") or {}
            if key not in self._open:
                self._close("text", events)
                name = str(function.get("name") or "")
                kind = "custom_tool_call" if name in self.custom_tools else "function_call"
                self._item(key, kind, events, call_id=call.get("id"), name=name)
            if arguments := function.get("arguments"):
                events += self.build.delta(self._open[key], str(arguments))
        if finish := choice.get("finish_reason"):
            self._finish = str(finish)
            for key in list(self._open):
                self._close(key, events)
        return events

    def _item(self, key: str, kind: str, events: list[Event], **fields: Any) -> Item:
        if key not in self._open:
            self._open[key] = self.build.open(kind, events, **fields)
        return self._open[key]

    def _close(self, key: str, events: list[Event]) -> None:
        if (item := self._open.pop(key, None)) is not None:
            events += self.build.close(item)
