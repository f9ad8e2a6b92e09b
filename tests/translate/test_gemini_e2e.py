"""The Gemini API on both sides, through the real server: the official `google-genai` SDK on
ChatGPT accounts and on Gemini keys, the OpenAI and Anthropic SDKs on Gemini keys, against
fakes that refuse what the real APIs refuse."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from quotapool.domain.state import Status
from quotapool.testing.fake_upstream import gemini_limited
from tests.conftest import Harness, HarnessFactory
from tests.proxy.test_client_keys_e2e import create

GEMINI = {"kind": "gemini", "name": "gem", "api_key": "gk-1"}
TOOL = types.FunctionDeclaration(
    name="get_weather",
    description="The weather in a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING)},
        required=["city"],
    ),
)
NO_AUTO = types.AutomaticFunctionCallingConfig(disable=True)


def gemini_client(h: Harness, key: str = "client-key", **options: Any) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=h.base, **options))


@pytest.fixture
def keys(harness: HarnessFactory) -> Harness:
    """Two Gemini keys (and the fake knows them)."""

    def known(fake: Any, _upstream: str) -> None:
        fake.add("gk-1", name="gem-1")
        fake.add("gk-2", name="gem-2")

    credentials = [{**GEMINI, "name": "g1"}, {**GEMINI, "name": "g2", "api_key": "gk-2"}]
    return harness(credentials=credentials, before_start=known, routing={"strategy": "sequential"})


def test_gemini_sdk_on_chatgpt_accounts_text_stream_and_a_function_turn(
    harness: HarnessFactory,
) -> None:
    h = harness()
    client = gemini_client(h)
    safety = types.SafetySetting(
        category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
        threshold=types.HarmBlockThreshold.BLOCK_NONE,
    )
    config = types.GenerateContentConfig(
        system_instruction="Be brief.", temperature=0.0, safety_settings=[safety]
    )
    answer = client.models.generate_content(model="gemini-2.5-pro", contents="hi", config=config)
    assert answer.text == "Hi from alpha!"
    assert answer.sdk_http_response is not None and answer.sdk_http_response.headers is not None
    dropped = answer.sdk_http_response.headers["x-quotapool-dropped"]
    assert dropped == "temperature, safetySettings", dropped
    assert answer.usage_metadata is not None and answer.usage_metadata.prompt_token_count
    sent = h.fake.seen[-1].body
    assert sent["model"] == "gpt-5.5" and sent["instructions"] == "Be brief."
    assert "temperature" not in sent  # the ChatGPT backend refuses it: left out, and named
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert "".join(c.text or "" for c in chunks) == "Hi from alpha!" and len(chunks) > 2
    assert h.fake.seen[-1].body["model"] == "gpt-5.4-mini"  # flash's stand-in

    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).tool_call = ("get_weather", json.dumps({"city": "Paris"}))
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[TOOL])], automatic_function_calling=NO_AUTO
    )
    asked = types.Content(role="user", parts=[types.Part(text="weather in Paris?")])
    first = client.models.generate_content(model="gemini-2.5-pro", contents=[asked], config=config)
    (call,) = first.function_calls or []
    assert call.name == "get_weather" and call.args == {"city": "Paris"}
    reply = types.Part.from_function_response(name="get_weather", response={"sunny": True})
    history = [asked, first.candidates[0].content, types.Content(role="user", parts=[reply])]  # type: ignore[index]
    second = client.models.generate_content(model="gemini-2.5-pro", contents=history, config=config)
    assert second.text and second.text.startswith("Hi from ")
    items = h.fake.seen[-1].body["input"]
    calls = [i for i in items if i.get("type") == "function_call"]
    outputs = [i for i in items if i.get("type") == "function_call_output"]
    assert calls and outputs and outputs[0]["call_id"] == calls[0]["call_id"]
    assert json.loads(outputs[0]["output"]) == {"sunny": True}
    rows = h.rows(4)
    assert {r["route"] for r in rows} == {"gemini"} and rows[0]["input_tokens"]


def test_gemini_sdk_on_gemini_keys_passes_through(keys: Harness) -> None:
    h = keys
    client = gemini_client(h)
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert answer.text == "Hi from gem-1!"
    seen = h.fake.seen[-1]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == "gk-1" and "model" not in seen.body
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="hi"))
    assert "".join(c.text or "" for c in chunks) == "Hi from gem-1!"
    assert h.fake.seen[-1].query == "alt=sse"
    rows = h.rows(2)
    assert [(r["input_tokens"], r["output_tokens"]) for r in rows] == [(7, 5), (7, 5)]
    assert all(r["credential"] == "g1" and r["route"] == "gemini" for r in rows)


def test_a_gemini_key_at_its_limit_fails_over_unseen_and_waits_as_retry_info_says(
    keys: Harness,
) -> None:
    h = keys
    h.fake.account("gk-1").fail_next(gemini_limited(40))
    client = gemini_client(h)
    answer = client.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert answer.text == "Hi from gem-2!"
    state = h.state("g1")
    assert state.status is Status.RATE_LIMITED and 30 < state.until - time.time() <= 41
    h.fake.account("gk-2").fail_next(gemini_limited(20, per_day=True))
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(model="gemini-2.5-pro", contents="again")
    assert refused.value.code == 429 and refused.value.status == "RESOURCE_EXHAUSTED"
    details = refused.value.details["error"]["details"]
    assert details[0]["@type"].endswith("RetryInfo") and details[0]["retryDelay"].endswith("s")
    assert h.state("g2").status is Status.QUOTA_EXCEEDED  # the day's quota, not a rate


def test_openai_and_anthropic_clients_on_a_gemini_key(keys: Harness) -> None:
    h = keys
    h.fake.account("gk-1").tool_call = ("get_weather", json.dumps({"city": "Oslo"}))
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    first = h.openai().responses.create(
        model="gemini-2.5-pro",
        input="weather in Oslo?",
        tools=[tool],  # type: ignore[list-item]
    )
    call = next(i for i in first.output if i.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Oslo"}
    sent = h.fake.seen[-1].body
    declared = sent["tools"][0]["functionDeclarations"][0]
    assert declared["name"] == "get_weather" and "model" not in sent
    second = h.openai().responses.create(
        model="gemini-2.5-pro",
        input=[
            {"role": "user", "content": "weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ],  # fmt: skip
        tools=[tool],  # type: ignore[list-item]
    )
    assert second.output_text == "Hi from gem-1!"
    contents = h.fake.seen[-1].body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[2]["parts"][0]["functionResponse"]["response"] == {"output": "rain"}

    with h.anthropic().messages.stream(
        model="gemini-2.5-flash", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hi from gem-1!" and final.usage.output_tokens == 5
    assert h.fake.seen[-1].query == "alt=sse"
    chat = h.openai().chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], max_tokens=20
    )
    assert chat.choices[0].message.content == "Hi from gem-1!"
    assert h.fake.seen[-1].body["generationConfig"] == {"maxOutputTokens": 20}


def test_a_client_key_in_the_query_is_taken_and_never_sent_on(keys: Harness) -> None:
    h = keys
    key = create(h, "gemini-user")
    path = "/v1beta/models/gemini-2.5-pro:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    with h.http() as http:
        refused = http.post(path, json=body)
        answered = http.post(f"{path}?key={key}", json=body)
    assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"
    assert answered.status_code == 200, answered.text
    seen = h.fake.seen[-1]
    assert seen.query == "" and seen.headers["x-goog-api-key"] == "gk-1"
    assert key not in json.dumps(seen.headers)
    assert h.rows(2)[-1]["client_key"] == "gemini-user"


def test_what_cannot_be_carried_is_a_400_in_geminis_shape(harness: HarnessFactory) -> None:
    h = harness()
    client = gemini_client(h)
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model="gemini-2.5-pro",
            contents="hi",
            config=types.GenerateContentConfig(candidate_count=2),
        )
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert "candidateCount" in str(refused.value.message)
    with pytest.raises(errors.ClientError) as tool:
        client.models.generate_content(
            model="gemini-2.5-pro",
            contents="run it",
            config=types.GenerateContentConfig(
                tools=[types.Tool(code_execution=types.ToolCodeExecution())]
            ),
        )
    assert tool.value.code == 400 and "codeExecution" in str(tool.value.message)
    counted = client.models.count_tokens(model="gemini-2.5-pro", contents="hello there " * 40)
    assert counted.total_tokens and 100 < counted.total_tokens < 200
    assert h.fake.seen == []  # nothing of it reached an account


def test_an_exhausted_pool_answers_geminis_429_with_retry_info(harness: HarnessFactory) -> None:
    from quotapool.testing.fake_upstream import usage_limit

    h = harness()
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).always = usage_limit(time.time() + 900)
    client = gemini_client(h)
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert refused.value.code == 429
    (info,) = refused.value.details["error"]["details"]
    assert 850 < int(info["retryDelay"].removesuffix("s")) <= 900


def test_raw_http_streams_and_errors(keys: Harness) -> None:
    h = keys
    path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with h.http() as http:
        streamed = http.post(path, json=body)
        bad = http.post(path, content=b"{not json", headers={"content-type": "application/json"})
        unknown = http.post("/v1beta/models/gemini-2.5-pro:embedContent", json=body)
        array = http.post(path.removesuffix("?alt=sse"), json=body)
    assert streamed.status_code == 200
    events = [
        json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: ")
    ]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == 404
    assert array.status_code == 400 and "alt=sse" in array.json()["error"]["message"]


def test_the_sdk_lists_models_and_its_key_is_a_client_key(harness: HarnessFactory) -> None:
    h = harness()
    key = create(h, "genai-sdk", "--models", "gemini-2.5-pro")
    client = gemini_client(h, key)
    names = [m.name for m in client.models.list()]
    assert "models/gemini-2.5-pro" in names and "models/gemini-2.5-flash" in names
    model = client.models.get(model="gemini-2.5-pro")
    assert model.supported_actions and "generateContent" in model.supported_actions
    assert client.models.generate_content(model="gemini-2.5-pro", contents="hi").text
    with pytest.raises(errors.ClientError) as refused:  # the key's allowlist holds
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert refused.value.code == 403 and refused.value.status == "PERMISSION_DENIED"
    stranger = gemini_client(h, "qp-not-a-key")
    with pytest.raises(errors.ClientError) as unknown:
        stranger.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert unknown.value.code == 401 and unknown.value.status == "UNAUTHENTICATED"
    assert all(key not in json.dumps(s.headers) for s in h.fake.seen)
