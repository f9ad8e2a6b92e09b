"""Gemini API clients (`generateContent`, `streamGenerateContent`) on other upstreams: their
request as a Responses request (the hub), and the hub's Responses events as Gemini's
`GenerateContentResponse` chunks — or one such object for `generateContent`.

A Gemini request names its model and whether it streams in its path; quotapool keeps both in
the payload (`model`, `stream`). Function calls carry no id in Gemini's older form: a call is
given one here (`call_<n>`), and a function response answers the oldest unanswered call of its
name. Pure."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from quotapool.translate import TranslationError
from quotapool.upstream.usage import Usage, parse_usage

GENERATION_FIELDS = (
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "candidateCount",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseLogprobs",
    "logprobs",
    "responseModalities",
    "speechConfig",
    "mediaResolution",
)
"""`generationConfig` fields a refusal may name (checked as if they were top-level)."""
CARRIED_ELSEWHERE = {
    "candidateCount": "several candidates",
    "presencePenalty": "a presence penalty",
    "frequencyPenalty": "a frequency penalty",
    "seed": "a sampling seed",
    "responseLogprobs": "log probabilities",
    "logprobs": "log probabilities",
    "responseModalities": "output modalities other than text",
    "speechConfig": "speech output",
    "mediaResolution": "a media resolution",
    "cachedContent": "cached content (the Gemini API's own storage)",
}
"""What only the Gemini API itself honours: refused on every other upstream (`candidateCount`:
1 and `responseModalities` of text only are neutral)."""
ON_CODEX = {
    **CARRIED_ELSEWHERE,
    "maxOutputTokens": "an output cap: the backend refuses one",
    "stopSequences": "stop sequences",
}
"""What the ChatGPT backend cannot honour besides (its sampling controls are left out and
named in `x-quotapool-dropped`: the Gemini CLI always sends them)."""
SAFETY = {"safetySettings": "safety thresholds (the upstream applies its own)"}
"""Left out on every other upstream, and named in `x-quotapool-dropped`."""
TOP_K = {"topK": "top-k sampling", **SAFETY}
"""Left out (and named) where there is none: the Gemini CLI always sends it."""
UNSAID_ON_CODEX = {"temperature": "sampling temperature", "topP": "nucleus sampling", **TOP_K}
SNAKE = {
    "system_instruction": "systemInstruction",
    "generation_config": "generationConfig",
    "tool_config": "toolConfig",
    "safety_settings": "safetySettings",
    "cached_content": "cachedContent",
}


def flat(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request's top-level fields with its `generationConfig`'s beside them (what a
    refusal names), and neutral values left out."""
    view = {SNAKE.get(k, k): v for k, v in body.items()}
    config = view.get("generationConfig")
    if isinstance(config, dict):
        view |= {k: v for k, v in config.items() if k in GENERATION_FIELDS}
    if view.get("candidateCount") == 1:
        del view["candidateCount"]
    if view.get("responseModalities") in (["TEXT"], ["text"]):
        del view["responseModalities"]
    return view


def without_fields(body: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """`body` without `names`, at the top or in its `generationConfig`."""
    if not names:
        return body
    kept = {k: v for k, v in body.items() if SNAKE.get(k, k) not in names}
    for key in ("generationConfig", "generation_config"):
        if isinstance(config := kept.get(key), dict):
            kept[key] = {k: v for k, v in config.items() if k not in names}
    return kept


def gemini_to_responses(body: dict[str, Any], session: str | None = None) -> dict[str, Any]:
    """A Gemini request as a streamed, unstored Responses request."""
    view = {SNAKE.get(k, k): v for k, v in body.items()}
    contents = view.get("contents")
    if not isinstance(contents, list) or not contents:
        raise TranslationError("'contents' must be a non-empty array", "contents")
    calls = _Calls()
    items: list[dict[str, Any]] = []
    for index, content in enumerate(contents):
        items += _items(content, f"contents[{index}]", calls)
    request: dict[str, Any] = {
        "model": body["model"],
        "instructions": _text_of(view.get("systemInstruction"), "systemInstruction"),
        "input": items,
        "stream": True,
        "store": False,
    }
    tools = [t for i, each in enumerate(view.get("tools") or []) for t in _tools(each, i)]
    if tools:
        request["tools"] = tools
        request["tool_choice"] = _tool_choice(view.get("toolConfig"))
    config = view.get("generationConfig") or {}
    if not isinstance(config, dict):
        raise TranslationError("'generationConfig' must be an object", "generationConfig")
    for name, hub in (("temperature", "temperature"), ("topP", "top_p"), ("topK", "top_k")):
        if config.get(name) is not None:
            request[hub] = config[name]
    if isinstance(cap := config.get("maxOutputTokens"), int):
        request["max_output_tokens"] = cap
    if config.get("stopSequences"):
        request["stop"] = config["stopSequences"]
    if (reasoning := _reasoning(config.get("thinkingConfig"))) is not None:
        request["reasoning"] = reasoning
    if (text := _format(config)) is not None:
        request["text"] = text
    if session:
        request["prompt_cache_key"] = session
    return request


class _Calls:
    """Ids of the function calls of a conversation (a response answers the oldest open one
    of its name when it names none)."""

    def __init__(self) -> None:
        self.made = 0
        self.open: dict[str, list[str]] = {}

    def call(self, name: str, given: Any) -> str:
        self.made += 1
        call_id = given if isinstance(given, str) and given else f"call_{self.made}"
        self.open.setdefault(name, []).append(call_id)
        return call_id

    def answer(self, name: str, given: Any) -> str:
        waiting = self.open.get(name) or []
        if isinstance(given, str) and given:
            if given in waiting:
                waiting.remove(given)
            return given
        if not waiting:
            raise TranslationError(f"a functionResponse of {name!r} answers no call", "contents")
        return waiting.pop(0)


def _items(content: Any, param: str, calls: _Calls) -> list[dict[str, Any]]:
    if not isinstance(content, dict):
        raise TranslationError("each content must be an object", param)
    role = content.get("role") or "user"
    parts = content.get("parts")
    if not isinstance(parts, list):
        raise TranslationError("'parts' must be an array", f"{param}.parts")
    if role == "model":
        return _model_items(parts, param, calls)
    if role not in ("user", "function", "tool"):
        raise TranslationError(f"content role {role!r} is not supported", f"{param}.role")
    outputs: list[dict[str, Any]] = []
    said: list[dict[str, Any]] = []
    for index, part in enumerate(parts):
        where = f"{param}.parts[{index}]"
        if not isinstance(part, dict):
            raise TranslationError("each part must be an object", where)
        if "text" in part:
            said.append({"type": "input_text", "text": str(part["text"])})
        elif isinstance(response := part.get("functionResponse"), dict):
            name = str(response.get("name", ""))
            output = response.get("response")
            text = output if isinstance(output, str) else orjson.dumps(output).decode()
            call_id = calls.answer(name, response.get("id"))
            outputs.append({"type": "function_call_output", "call_id": call_id, "output": text})
        elif isinstance(data := part.get("inlineData"), dict):
            said.append(_image(str(data.get("mimeType", "")), data.get("data"), where, inline=True))
        elif isinstance(data := part.get("fileData"), dict):
            said.append(_image(str(data.get("mimeType", "")), data.get("fileUri"), where))
        else:
            raise TranslationError(f"part {_kind(part)} is not supported here", where)
    message = [{"type": "message", "role": "user", "content": said}] if said else []
    return outputs + message


def _model_items(parts: list[Any], param: str, calls: _Calls) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    texts: list[str] = []
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            raise TranslationError("each part must be an object", f"{param}.parts[{index}]")
        if part.get("thought"):  # its own thinking: another model cannot read it back
            continue
        if "text" in part:
            texts.append(str(part["text"]))
        elif isinstance(call := part.get("functionCall"), dict):
            name = str(call.get("name", ""))
            arguments = orjson.dumps(call.get("args") or {}).decode()
            call_id = calls.call(name, call.get("id"))
            items.append(
                {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
            )
        elif set(part) - {"thoughtSignature"}:
            raise TranslationError(
                f"part {_kind(part)} is not supported here", f"{param}.parts[{index}]"
            )
    if texts:
        content = [{"type": "output_text", "text": "".join(texts)}]
        items.insert(0, {"type": "message", "role": "assistant", "content": content})
    return items


def _kind(part: dict[str, Any]) -> str:
    return ", ".join(sorted(k for k in part if k != "thoughtSignature")) or "{}"


def _image(mime: str, data: Any, where: str, *, inline: bool = False) -> dict[str, Any]:
    if not mime.startswith("image/") or not isinstance(data, str):
        raise TranslationError(f"only images are supported as files here, not {mime!r}", where)
    url = f"data:{mime};base64,{data}" if inline else data
    return {"type": "input_image", "image_url": url}


def _text_of(content: Any, param: str) -> str:
    """A system instruction: a Content's text parts (or a plain string)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise TranslationError("it must be a content with text parts", param)
    return "\n\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def _tools(tool: Any, index: int) -> list[dict[str, Any]]:
    where = f"tools[{index}]"
    if not isinstance(tool, dict):
        raise TranslationError("each tool must be an object", where)
    found: list[dict[str, Any]] = []
    for key, value in tool.items():
        if key in ("functionDeclarations", "function_declarations"):
            found += [_function(d, f"{where}.{key}") for d in value or []]
        elif key in ("googleSearch", "google_search", "googleSearchRetrieval"):
            found.append({"type": "web_search"})
        else:
            raise TranslationError(f"the {key} tool is served by the Gemini API only", where)
    return found


def _function(declaration: Any, where: str) -> dict[str, Any]:
    if not isinstance(declaration, dict) or not declaration.get("name"):
        raise TranslationError("a function declaration needs a name", where)
    schema = declaration.get("parametersJsonSchema", declaration.get("parameters"))
    parameters = json_schema(schema) if schema else {"type": "object", "properties": {}}
    return {
        "type": "function",
        "name": declaration["name"],
        "description": declaration.get("description", ""),
        "parameters": parameters,
    }


_SCHEMA_ONLY = frozenset({"propertyOrdering", "example", "nullable"})


def json_schema(schema: Any) -> Any:
    """A Gemini `Schema` (OpenAPI: `"type": "OBJECT"`, `nullable`) as JSON Schema."""
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_ONLY:
            continue
        if key == "type" and isinstance(value, str):
            converted[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            converted[key] = {name: json_schema(s) for name, s in value.items()}
        elif key in ("items", "anyOf", "additionalProperties"):
            converted[key] = json_schema(value)
        else:
            converted[key] = value
    if schema.get("nullable") and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    return converted


def _tool_choice(config: Any) -> Any:
    calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(calling, dict):
        return "auto"
    mode = str(calling.get("mode", "AUTO")).upper()
    names = calling.get("allowedFunctionNames") or []
    if mode == "NONE":
        return "none"
    if mode in ("ANY", "VALIDATED"):
        if len(names) == 1:
            return {"type": "function", "name": names[0]}
        return "required"
    return "auto"


def _reasoning(thinking: Any) -> dict[str, Any] | None:
    """Gemini's thinking budget (tokens; -1: as the model sees fit) as a reasoning effort."""
    if not isinstance(thinking, dict):
        return None
    reasoning: dict[str, Any] = {}
    budget, level = thinking.get("thinkingBudget"), thinking.get("thinkingLevel")
    if isinstance(level, str) and level.lower() in ("low", "medium", "high"):
        reasoning["effort"] = level.lower()
    elif isinstance(budget, int) and budget >= 0:
        reasoning["effort"] = "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"
    if thinking.get("includeThoughts"):
        reasoning["summary"] = "auto"
    return reasoning or None


def _format(config: dict[str, Any]) -> dict[str, Any] | None:
    if config.get("responseMimeType") != "application/json":
        return None
    schema = config.get("responseJsonSchema", config.get("responseSchema"))
    if schema is None:
        return {"format": {"type": "json_object"}}
    return {"format": {"type": "json_schema", "name": "response", "schema": json_schema(schema)}}


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """`countTokens` when no Gemini key counts them: about four characters a token."""
    inner = body.get("generateContentRequest")
    request = inner if isinstance(inner, dict) else body
    counted = {k: request.get(k) for k in ("contents", "systemInstruction", "tools")}
    return math.ceil(len(orjson.dumps(counted)) / 4)


FINISH = {"max_output_tokens": "MAX_TOKENS", "content_filter": "SAFETY"}


def gemini_usage_metadata(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}
    metadata = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_tokens:
        metadata["cachedContentTokenCount"] = usage.cached_tokens
    return metadata


class GeminiStreamAdapter:
    """Feeds on Responses events; emits `GenerateContentResponse` chunks as SSE (`alt=sse`),
    or one at the end. Text streams as it comes; a function call is sent whole when done (as
    Gemini sends them); thinking only when `includeThoughts` asked for it."""

    tail = b""

    def __init__(self, model: str, *, thoughts: bool = False) -> None:
        self.model = model
        self.thoughts = thoughts
        self.id = uuid.uuid4().hex[:22]
        self.parts: list[dict[str, Any]] = []
        """Every part so far (text merged), as the whole answer holds them."""
        self.usage: Usage | None = None
        self.finish: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish is not None

    def feed(self, payload: dict[str, Any]) -> bytes:
        match payload.get("type"):
            case "response.output_text.delta":
                return self._part({"text": str(payload.get("delta", ""))})
            case "response.reasoning_summary_text.delta" if self.thoughts:
                return self._part({"text": str(payload.get("delta", "")), "thought": True})
            case "response.output_item.done":
                item = payload.get("item") or {}
                if item.get("type") != "function_call":
                    return b""
                try:
                    args = orjson.loads(item.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    args = {}
                call = {"name": item.get("name"), "args": args, "id": item.get("call_id")}
                return self._part({"functionCall": call})
            case "response.completed" | "response.incomplete":
                response = payload.get("response") or {}
                self.usage = parse_usage(response.get("usage"))
                reason = (response.get("incomplete_details") or {}).get("reason")
                self.finish = FINISH.get(str(reason), "STOP")
                return _sse(self._chunk([{"text": ""}], finish=True))
            case "response.failed" | "error":
                error = (payload.get("response") or {}).get("error") or payload.get("error") or {}
                said = str(error.get("message") or "the upstream failed")
                self.finish = "OTHER"
                body = {"error": {"code": 500, "message": said, "status": "INTERNAL"}}
                return _sse(body)
        return b""

    def _part(self, part: dict[str, Any]) -> bytes:
        if "functionCall" not in part and not part["text"]:
            return b""
        last = self.parts[-1] if self.parts else None
        if (
            last is not None
            and "text" in part
            and "text" in last
            and last.get("thought") == part.get("thought")
        ):
            last["text"] += part["text"]
        else:
            self.parts.append(dict(part))
        return _sse(self._chunk([part]))

    def _chunk(self, parts: list[dict[str, Any]], *, finish: bool = False) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if finish:
            candidate["finishReason"] = self.finish
            chunk["usageMetadata"] = gemini_usage_metadata(self.usage)
        chunk["modelVersion"] = self.model
        chunk["responseId"] = self.id
        return chunk

    def completion(self) -> dict[str, Any]:
        parts = self.parts or [{"text": ""}]
        chunk = self._chunk(parts, finish=True)
        chunk["candidates"][0]["finishReason"] = self.finish or "STOP"
        return chunk


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"
