"""Arbitrary JSON at every route: never a 5xx, never a traceback — a 400 naming the bad field,
or an answer."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Harness

ROUTES = [
    "/v1/responses",
    "/backend-api/codex/responses",
    "/v1/responses/compact",
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
]
MODELS = ["gpt-5.5", "gpt-4.1", "claude-sonnet-4-5", "nope"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "messages",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "stream",
    "stream_options",
    "max_tokens",
    "previous_response_id",
    "reasoning",
    "text",
    "system",
    "content",
    "response_format",
    "n",
    "temperature",
    "prompt_cache_key",
    "store",
    "include",
    "metadata",
]
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer"]) | json_values
parts = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_text"]) | json_values},
    optional={"text": json_values, "image_url": json_values},
)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "id": json_values,
            "function": st.fixed_dictionaries(
                {}, optional={"name": json_values, "arguments": json_values}
            )
            | json_values,
        },
    )
    | json_values,
    max_size=2,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles},
        optional={
            "content": st.text(max_size=5)
            | st.lists(parts | json_values, max_size=2)
            | json_values,
            "tool_calls": tool_calls | json_values,
            "tool_call_id": json_values,
        },
    )
    | json_values,
    max_size=3,
)
tools = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["function", "web_search"]) | json_values},
        optional={
            "function": st.fixed_dictionaries(
                {}, optional={"name": json_values, "parameters": json_values}
            )
            | json_values
        },
    )
    | json_values,
    max_size=2,
)
models = st.one_of(*[st.sampled_from(MODELS)] * 3, json_values)


def bodies(route: str) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly well-formed envelopes for the route, with anything inside them."""
    required: dict[str, st.SearchStrategy[Any]] = {"model": models}
    if route in ("/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"):
        required["messages"] = messages | json_values
    return st.fixed_dictionaries(
        required,
        optional={
            **{name: json_values for name in FIELDS if name not in required},
            "tools": tools | json_values,
            "input": st.text(max_size=10) | st.lists(json_values, max_size=3) | json_values,
            "stream": st.booleans() | json_values,
            "max_tokens": st.integers(1, 100) | json_values,
        },
    )


@pytest.mark.parametrize("route", ROUTES)
def test_arbitrary_json_never_gets_a_5xx_or_a_traceback(
    h: Harness, caplog: pytest.LogCaptureFixture, route: str
) -> None:
    with h.http() as http:

        @settings(
            max_examples=250,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(body=bodies(route))
        def check(body: dict[str, Any]) -> None:
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                response = http.post(route, json=body)
            assert response.status_code < 500, (route, body, response.text)
            payload = (
                response.json()
                if not response.headers["content-type"].startswith("text/event-stream")
                else None
            )
            if response.status_code == 400 and payload is not None:
                # Quotapool's own and the upstream's 400s say what is wrong (the Codex backend
                # as `detail`).
                error = payload.get("error") or {"message": payload.get("detail")}
                assert error["message"], (route, body, payload)
            assert "Traceback" not in response.text
            tracebacks = [r for r in caplog.records if r.exc_info]
            assert not tracebacks, (route, body, tracebacks[0].getMessage())

        check()
