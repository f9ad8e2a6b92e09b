"""Chat Completions ⇄ Responses translation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from quotapool.domain.api import Api, Route
from quotapool.translate import TranslationError
from quotapool.translate.chat_responses import ChatStreamAdapter, chat_request_to_responses
from quotapool.translate.table import translate


def test_full_conversation_translates() -> None:
    request = chat_request_to_responses(
        {
            "model": "gpt-5.5",
            "messages": [
                {"role": "system", "content": "sys"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "data:x"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "reasoning_effort": "high",
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {}}},
        }
    )
    assert request["instructions"] == "sys"
    assert request["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "data:x"},
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ]
    assert request["tools"] == [
        {"type": "function", "name": "f", "description": "", "parameters": {"type": "object"}}
    ]
    assert request["tool_choice"] == {"type": "function", "name": "f"}
    assert request["reasoning"] == {"effort": "high"}
    assert request["text"] == {"format": {"type": "json_schema", "name": "s", "schema": {}}}
    assert request["stream"] is True and request["store"] is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0]",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "image_generation"}],
            },
            "tools[0]",
        ),
        *(
            ({"model": "m", "messages": [{"role": "user", "content": "x"}], name: value}, name)
            for name, value in (
                ("temperature", 0.2),
                ("max_tokens", 100),
                ("max_completion_tokens", 100),
                ("n", 2),
                ("logprobs", True),
                ("stop", ["\n"]),
                ("seed", 7),
                ("top_p", 0.9),
            )
        ),
    ],
)
def test_untranslatable_requests_name_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as info:
        translate(Route.CHAT, Api.CODEX, body)
    assert info.value.param == param


def test_neutral_values_and_image_detail_are_carried_over() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}}
    request = chat_request_to_responses(
        {
            "model": "m",
            "n": 1,
            "logprobs": False,
            "messages": [{"role": "user", "content": [image]}],
        }
    )
    assert request["input"][0]["content"] == [
        {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}
    ]


def test_failed_response_becomes_an_error_chunk() -> None:
    adapter = ChatStreamAdapter("m", include_usage=False, created=1)
    out = adapter.feed(
        {
            "type": "response.failed",
            "response": {"error": {"code": "server_error", "message": "boom"}},
        }
    )
    assert orjson.loads(out[6:]) == {"error": {"message": "boom", "type": "server_error"}}


def test_incomplete_for_length_finishes_with_length() -> None:
    adapter = ChatStreamAdapter("m", include_usage=True, created=1)
    adapter.feed({"type": "response.created", "response": {"id": "resp_1"}})
    adapter.feed({"type": "response.output_text.delta", "delta": "par"})
    adapter.feed(
        {
            "type": "response.incomplete",
            "response": {
                "incomplete_details": {"reason": "max_output_tokens"},
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        }
    )
    completion = adapter.completion()
    assert completion["id"] == "chatcmpl-1"
    assert completion["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "par"},
        "finish_reason": "length",
    }
    assert completion["usage"]["prompt_tokens"] == 3
