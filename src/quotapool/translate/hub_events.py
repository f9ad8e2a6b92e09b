"""The Responses events of an answer read from another API's stream (chat chunks, Anthropic
events): what every client adapter consumes. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from quotapool.upstream.usage import Usage

Event = dict[str, Any]


def responses_usage(usage: Usage | None) -> dict[str, Any]:
    """Token counts as the Responses API reports them (cached input counted within)."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def custom_input(arguments: str) -> str:
    """A custom tool's input from the JSON arguments it was called with as a function."""
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments
    return str(parsed.get("input", "")) if isinstance(parsed, dict) else str(parsed)


class Item:
    """One output item while it streams: a message, a reasoning summary, or a tool call."""

    __slots__ = ("buffer", "fields", "index")

    def __init__(self, index: int, fields: dict[str, Any]) -> None:
        self.index = index
        self.fields = fields
        self.buffer = ""
        """The text, summary, arguments or custom input so far."""

    @property
    def kind(self) -> str:
        return str(self.fields["type"])

    def event(self, kind: str, **fields: Any) -> Event:
        return {"type": kind, "item_id": self.fields["id"], "output_index": self.index, **fields}


class ResponseBuilder:
    """Numbers output items in the order they open, and says each step as a Responses event."""

    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        self.output: list[dict[str, Any]] = []
        self._count = 0

    def response(self, status: str, usage: Usage | None = None) -> dict[str, Any]:
        response: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "status": status,
            "output": list(self.output),
            "usage": responses_usage(usage) if status != "in_progress" else None,
        }
        if status == "incomplete":
            response["incomplete_details"] = {"reason": "max_output_tokens"}
        return response

    def created(self) -> Event:
        return {"type": "response.created", "response": self.response("in_progress")}

    def ended(self, incomplete: bool, usage: Usage | None) -> Event:
        status = "incomplete" if incomplete else "completed"
        return {"type": f"response.{status}", "response": self.response(status, usage)}

    def open(self, kind: str, events: list[Event], **fields: Any) -> Item:
        """A new item: a `message`, `reasoning`, `function_call` or `custom_tool_call`."""
        item_id = f"item_{self.response_id.removeprefix('resp_')}_{self._count}"
        item = Item(self._count, {"type": kind, "id": item_id, **fields, "status": "in_progress"})
        self._count += 1
        added = dict(item.fields)
        if kind == "message":
            added |= {"role": "assistant", "content": []}
        elif kind == "reasoning":
            added["summary"] = []
        elif kind == "function_call":
            added["arguments"] = ""
        elif kind == "custom_tool_call":
            added["input"] = ""
        events.append(
            {"type": "response.output_item.added", "output_index": item.index, "item": added}
        )
        if kind == "message":
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(item.event("response.content_part.added", content_index=0, part=part))
        return item

    def delta(self, item: Item, text: str) -> list[Event]:
        """More of the item's text, summary or arguments (a custom tool's input comes whole)."""
        item.buffer += text
        if item.kind == "message":
            return [item.event("response.output_text.delta", content_index=0, delta=text)]
        if item.kind == "reasoning":
            return [
                item.event("response.reasoning_summary_text.delta", summary_index=0, delta=text)
            ]
        if item.kind == "function_call":
            return [item.event("response.function_call_arguments.delta", delta=text)]
        return []

    def close(self, item: Item) -> list[Event]:
        done = {**item.fields, "status": "completed"}
        events: list[Event] = []
        text = item.buffer
        if item.kind == "message":
            part = {"type": "output_text", "text": text, "annotations": []}
            done |= {"role": "assistant", "content": [part]}
            events.append(item.event("response.output_text.done", content_index=0, text=text))
            events.append(item.event("response.content_part.done", content_index=0, part=part))
        elif item.kind == "reasoning":
            done["summary"] = [{"type": "summary_text", "text": text}] if text else []
        elif item.kind == "custom_tool_call":
            done["input"] = custom_input(text)
        else:
            done["arguments"] = text or "{}"
        self.output.append(done)
        events.append(
            {"type": "response.output_item.done", "output_index": item.index, "item": done}
        )
        return events
