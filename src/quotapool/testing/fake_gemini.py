"""The Gemini API side of the fake upstream, as strict as the real one: the key in
`x-goog-api-key` (or `?key=`), an unknown model a 404, a field the API does not define a 400
(`Invalid JSON payload received. Unknown name …` — a `model` or `stream` in the body among
them: the path carries those), a function response that answers no call a 400; answers as
`GenerateContentResponse` objects, streamed as `alt=sse` events (`\\r\\n\\r\\n`, as Google
sends them) or as one JSON array."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from quotapool.testing import events
from quotapool.testing.fake_model import Account, Failure, Seen

MODEL = re.compile(r"gemini-\d+(\.\d+)?-(pro|flash|flash-lite)(-preview)?(-\d\d-\d\d)?")
"""The names the Gemini API serves (`gemini-2.5-pro`, `gemini-3.1-pro-preview`…); any other
is a 404."""


class _Strict(BaseModel):
    """Proto JSON: camelCase or snake_case names, nothing the message does not define."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class _Part(_Strict):
    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    inline_data: dict[str, Any] | None = None
    file_data: dict[str, Any] | None = None
    function_call: dict[str, Any] | None = None
    function_response: dict[str, Any] | None = None


class _Content(_Strict):
    role: str | None = None
    parts: list[_Part]


class _ThinkingConfig(_Strict):
    thinking_budget: int | None = None
    include_thoughts: bool | None = None
    thinking_level: str | None = None


class _GenerationConfig(_Strict):
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    candidate_count: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: Any = None
    response_modalities: list[str] | None = None
    thinking_config: _ThinkingConfig | None = None


class _Tool(_Strict):
    function_declarations: list[dict[str, Any]] | None = None
    google_search: dict[str, Any] | None = None
    code_execution: dict[str, Any] | None = None
    url_context: dict[str, Any] | None = None


class GenerateContentBody(_Strict):
    contents: list[_Content]
    system_instruction: _Content | None = None
    tools: list[_Tool] | None = None
    tool_config: dict[str, Any] | None = None
    generation_config: _GenerationConfig | None = None
    safety_settings: list[dict[str, Any]] | None = None
    cached_content: str | None = None
    labels: dict[str, str] | None = None


def gemini_error(status: int, message: str, code: str, *details: dict[str, Any]) -> Failure:
    """An error as the Gemini API answers it (`google.rpc.Status`)."""
    body = {"error": {"code": status, "message": message, "status": code}}
    if details:
        body["error"]["details"] = list(details)
    return Failure(status, body)


def gemini_limited(retry_seconds: int = 30, *, per_day: bool = False) -> Failure:
    """The 429 a Gemini key answers at its rate limit (or its quota of the day)."""
    quota = "GenerateRequestsPerDayPerProjectPerModel" if per_day else "GenerateRequestsPerMinute"
    violation = {"quotaMetric": "generativelanguage.googleapis.com/generate_requests",
                 "quotaId": f"{quota}-FreeTier", "quotaValue": "10"}  # fmt: skip
    return gemini_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        "RESOURCE_EXHAUSTED",
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_seconds}s"},
    )


def _refused(failure: Failure) -> web.Response:
    return web.json_response(failure.body, status=failure.status, headers=failure.headers)


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"Invalid JSON payload received. Unknown name \"{first['loc'][-1]}\" at '{where}'"
    return f"Invalid value at '{where}': {first['msg']}"


class GeminiSide:
    """`/v1beta/models/{model}:generateContent` and `:streamGenerateContent` of the fake."""

    def __init__(
        self,
        accounts: dict[str, Account],
        seen: Callable[[Seen], None],
    ) -> None:
        self.accounts = accounts
        self.seen = seen

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1beta/models/{call}", self._call)

    async def _call(self, request: web.Request) -> web.StreamResponse:
        model, _, verb = request.match_info["call"].rpartition(":")
        token = request.headers.get("x-goog-api-key") or request.query.get("key") or ""
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        account = self.accounts.get(token)
        name = account.name if account is not None else None
        query = request.query_string
        self.seen(Seen(request.path, name, model, headers, body or {}, raw, query))
        refusal = _refusal(token, account, verb, model, body)
        if refusal is not None or account is None:
            return _refused(refusal or gemini_error(500, "", "INTERNAL"))
        account.served += 1
        if (failure := account.next_failure()) is not None:
            return _refused(failure)
        chunks = _answer(account, body, model)
        if verb == "generateContent":
            return web.json_response(_whole(chunks))
        if request.query.get("alt") != "sse":
            return web.json_response(chunks)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
        await response.write_eof()
        return response


def _refusal(
    token: str, account: Account | None, verb: str, model: str, body: Any
) -> Failure | None:
    """What the real API refuses before it answers: no key, a wrong one, an unknown method or
    model, a body it does not define."""
    if not token:
        message = "Method doesn't allow unregistered callers. Please use an API key."
        return gemini_error(403, message, "PERMISSION_DENIED")
    if account is None:
        reason = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
        }
        message = "API key not valid. Please pass a valid API key."
        return gemini_error(400, message, "INVALID_ARGUMENT", reason)
    if verb not in ("generateContent", "streamGenerateContent"):
        return gemini_error(404, f"Method {verb} not found.", "NOT_FOUND")
    if not MODEL.fullmatch(model):
        message = f"models/{model} is not found for API version v1beta, or is not supported."
        return gemini_error(404, message, "NOT_FOUND")
    if not isinstance(body, dict):
        return gemini_error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
    try:
        GenerateContentBody.model_validate(body)
    except ValidationError as exc:
        return gemini_error(400, _problem(exc), "INVALID_ARGUMENT")
    if (unanswered := _unanswered(body)) is not None:
        return gemini_error(400, unanswered, "INVALID_ARGUMENT")
    return None


def _unanswered(body: dict[str, Any]) -> str | None:
    """A function response must follow a model turn that called functions."""
    called = False
    for content in body.get("contents") or []:
        parts = content.get("parts") or []
        if content.get("role") == "model":
            called = any("functionCall" in p or "function_call" in p for p in parts)
        elif any("functionResponse" in p or "function_response" in p for p in parts):
            if not called:
                return (
                    "Please ensure that function response turn comes immediately after a "
                    "function call turn."
                )
            called = False
    return None


def _declared(body: dict[str, Any], name: str) -> bool:
    for tool in body.get("tools") or []:
        for declaration in (
            tool.get("functionDeclarations") or tool.get("function_declarations") or []
        ):
            if declaration.get("name") == name:
                return True
    return False


def _answer(account: Account, body: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """The answer's chunks: a scripted function call (once), else its text in `deltas`."""
    usage = {"promptTokenCount": 7, "candidatesTokenCount": 5, "totalTokenCount": 12}
    if account.tool_call is not None and _declared(body, account.tool_call[0]):
        name, arguments = account.tool_call
        account.tool_call = None
        parts: list[dict[str, Any]] = [
            {"functionCall": {"name": name, "args": orjson.loads(arguments)}}
        ]
        return [_chunk(model, parts, "STOP", usage)]
    text, pieces = account.text, max(1, account.deltas)
    config = body.get("generationConfig") or body.get("generation_config") or {}
    if config.get("responseMimeType") == "application/json":  # structured output: fitting JSON
        schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
        text = orjson.dumps(events.instance(schema)).decode()
    size = -(-len(text) // pieces)
    chunks = [_chunk(model, [{"text": text[i : i + size]}]) for i in range(0, len(text), size)]
    chunks[-1] = _chunk(model, chunks[-1]["candidates"][0]["content"]["parts"], "STOP", usage)
    return chunks


def _chunk(
    model: str,
    parts: list[dict[str, Any]],
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": "fake"}
    if finish is not None:
        candidate["finishReason"] = finish
    if usage is not None:
        chunk["usageMetadata"] = usage
    return chunk


def _whole(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for chunk in chunks:
        for part in chunk["candidates"][0]["content"]["parts"]:
            if "text" in part and parts and "text" in parts[-1]:
                parts[-1] = {"text": parts[-1]["text"] + part["text"]}
            else:
                parts.append(part)
    last = chunks[-1]
    return _chunk(last["modelVersion"], parts, "STOP", last.get("usageMetadata"))
