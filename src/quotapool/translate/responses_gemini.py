"""Gemini API keys serving other clients: the hub's Responses request as a Gemini
`generateContent` body, and Gemini's streamed `GenerateContentResponse` chunks read back as
Responses events. Custom (freeform) tools, such as the Codex CLI's `apply_patch`, become
functions taking one string, `input`, and come back as custom tool calls. Pure."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from quotapool.translate import TranslationError, as_function, call_arguments
from quotapool.translate.hub_events import Event, Item, ResponseBuilder
from quotapool.upstream.usage import Usage, gemini_usage

EFFORT_BUDGETS = {"minimal": 0, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
"""A reasoning effort as a Gemini thinking budget (tokens)."""


def responses_to_gemini(hub: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Gemini body for a Responses request (its model stays in the payload: the Gemini
    transport puts it in the path), and what had to be left out."""
    dropped: list[str] = []
    system = [str(hub.get("instructions") or "")]
    names: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    given = hub.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
    for index, item in enumerate(items):
        _add(contents, system, names, index, item)
    body: dict[str, Any] = {"model": hub["model"], "stream": True, "contents": contents}
    if said := "\n\n".join(s for s in system if s):
        body["systemInstruction"] = {"parts": [{"text": said}]}
    tools = hub.get("tools") or []
    if tools:
        declared, hosted = _tools(tools, dropped)
        body["tools"] = ([{"functionDeclarations": declared}] if declared else []) + hosted
        if (config := _tool_config(hub.get("tool_choice"))) is not None:
            body["toolConfig"] = config
    if generation := _generation(hub):
        body["generationConfig"] = generation
    return body, dropped


def _generation(hub: dict[str, Any]) -> dict[str, Any]:
    """Sampling, the output cap, thinking and the output's format as `generationConfig`."""
    generation: dict[str, Any] = {}
    for hub_name, name in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("max_output_tokens", "maxOutputTokens"),
        ("stop", "stopSequences"),
    ):
        if hub.get(hub_name) is not None:
            generation[name] = hub[hub_name]
    reasoning = hub.get("reasoning")
    if isinstance(reasoning, dict) and (reasoning.get("effort") or reasoning.get("summary")):
        thinking: dict[str, Any] = {}
        if (effort := reasoning.get("effort")) in EFFORT_BUDGETS:
            thinking["thinkingBudget"] = EFFORT_BUDGETS[str(effort)]
        if reasoning.get("summary"):
            thinking["includeThoughts"] = True
        generation["thinkingConfig"] = thinking
    text = hub.get("text")
    shape = text.get("format") if isinstance(text, dict) else None
    if isinstance(shape, dict) and shape.get("type") in ("json_object", "json_schema"):
        generation["responseMimeType"] = "application/json"
        if shape.get("schema") is not None:
            generation["responseJsonSchema"] = shape["schema"]
    return generation


def _add(
    contents: list[dict[str, Any]],
    system: list[str],
    names: dict[str, str],
    index: int,
    item: Any,
) -> None:
    param = f"input[{index}]"
    if not isinstance(item, dict):
        raise TranslationError("each input item must be an object", param)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role in ("system", "developer"):
            system.append("".join(p.get("text", "") for p in _parts(item.get("content"), param)))
        elif role in ("user", "assistant"):
            gemini_role = "model" if role == "assistant" else "user"
            for part in _parts(item.get("content"), param):
                _append(contents, gemini_role, part)
        else:
            raise TranslationError(f"message role {role!r} is not supported", f"{param}.role")
    elif kind in ("function_call", "custom_tool_call"):
        name, call_id = str(item.get("name", "")), str(item.get("call_id", ""))
        names[call_id] = name
        if kind == "custom_tool_call":
            args: Any = {"input": str(item.get("input", ""))}
        else:
            args = call_arguments(item.get("arguments"), param)
        _append(contents, "model", {"functionCall": {"name": name, "args": args, "id": call_id}})
    elif kind in ("function_call_output", "custom_tool_call_output"):
        call_id = str(item.get("call_id", ""))
        output = item.get("output")
        if isinstance(output, list):
            output = "".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
        response = {"name": names.get(call_id, ""), "response": {"output": output}, "id": call_id}
        _append(contents, "user", {"functionResponse": response})
    elif kind != "reasoning":  # reasoning is sealed for the model that wrote it
        raise TranslationError(
            f"input item type {kind!r} cannot be sent to a Gemini key", f"{param}.type"
        )


def _append(contents: list[dict[str, Any]], role: str, part: dict[str, Any]) -> None:
    """Consecutive parts of one role share a content (parallel calls, their responses)."""
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].append(part)
    else:
        contents.append({"role": role, "parts": [part]})


def _parts(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise TranslationError("content must be a string or an array of parts", f"{param}.content")
    parts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"{param}.content[{index}]"
        if kind in ("input_text", "output_text", "text", "refusal"):
            assert isinstance(part, dict)
            parts.append({"text": str(part.get("text") or part.get("refusal", ""))})
        elif kind == "input_image":
            assert isinstance(part, dict)
            parts.append(_image(part.get("image_url"), where))
        else:
            said = f"content part type {kind!r} cannot be sent to a Gemini key"
            raise TranslationError(said, where)
    return parts


def _image(url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        said = "an input_image needs an image_url (file ids are not kept here)"
        raise TranslationError(said, where)
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header.removeprefix("data:").split(";")[0] or "image/png"
        return {"inlineData": {"mimeType": mime, "data": data}}
    return {"fileData": {"mimeType": "image/*", "fileUri": url}}


Tools = list[dict[str, Any]]


def _tools(tools: list[Any], dropped: list[str]) -> tuple[Tools, Tools]:
    """Function declarations, and the hosted tools (a web search)."""
    declared: Tools = []
    hosted: Tools = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise TranslationError("each tool must be an object", f"tools[{index}]")
        kind = tool.get("type")
        if (function := as_function(tool)) is not None:
            name, description, schema = function
            declared.append(
                {"name": name, "description": description, "parametersJsonSchema": schema}
            )
        elif kind in ("web_search", "web_search_preview"):
            hosted.append({"googleSearch": {}})
        else:
            dropped.append(f"tools[{index}] ({kind})")
    return declared, hosted


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if isinstance(choice, dict) and choice.get("name"):
        names = [choice["name"]]
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}}
    return None


class GeminiEvents:
    """Gemini's streamed chunks in; the Responses events they amount to out. Text and thoughts
    stream into an open item; each function call is an item of its own, whole."""

    def __init__(self, custom_tools: frozenset[str] = frozenset()) -> None:
        self.custom_tools = custom_tools
        self.build = ResponseBuilder("resp_" + uuid.uuid4().hex)
        self._open: Item | None = None
        self._started = False
        self._usage: Usage | None = None
        self.finished = False

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        if not self._started:
            self._started = True
            events.append(self.build.created())
        if isinstance(error := chunk.get("error"), dict):
            said = {"type": "server_error", "message": str(error.get("message", ""))}
            return [*events, {"type": "error", "error": said}]
        if self.finished:
            return events
        if "usageMetadata" in chunk:
            self._usage = gemini_usage(chunk["usageMetadata"]) or self._usage
        for candidate in chunk.get("candidates") or []:
            if not isinstance(candidate, dict) or candidate.get("index", 0) != 0:
                continue
            for part in (candidate.get("content") or {}).get("parts") or []:
                if isinstance(part, dict):
                    events += self._part(part)
            if candidate.get("finishReason") and not self.finished:
                # (the last chunk: it carries the usage too)
                self.finished = True
                events += self._close()
                incomplete = candidate["finishReason"] == "MAX_TOKENS"
                events.append(self.build.ended(incomplete, self._usage))
        return events

    def _part(self, part: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        if isinstance(call := part.get("functionCall"), dict):
            events += self._close()
            name = str(call.get("name", ""))
            call_id = str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}")
            arguments = orjson.dumps(call.get("args") or {}).decode()
            if name in self.custom_tools:
                item = self.build.open("custom_tool_call", events, call_id=call_id, name=name)
            else:
                item = self.build.open("function_call", events, call_id=call_id, name=name)
            events += self.build.delta(item, arguments)
            return events + self.build.close(item)
        text = part.get("text")
        if not isinstance(text, str) or not text:
            return events
        kind = "reasoning" if part.get("thought") else "message"
        if self._open is None or self._open.kind != kind:
            events += self._close()
            self._open = self.build.open(kind, events)
        return events + self.build.delta(self._open, text)

    def _close(self) -> list[Event]:
        item, self._open = self._open, None
        return self.build.close(item) if item is not None else []

    def end(self) -> list[Event]:
        """Nothing more: the answer completed with its finish reason (or never did)."""
        return []
