"""Routing profiles through the real server: chosen by header or path, each with its own
strategy, credentials, weights, scenario models and rotation counters."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import anthropic
import httpx
import openai
import pytest

from quotapool.domain.outcome import StatusSet
from quotapool.domain.state import Status
from tests.conftest import Harness, HarnessFactory, codex_credentials

PROFILES: dict[str, Any] = {
    "fast": {
        "strategy": "round_robin",
        "credentials": ["bravo", "charlie"],
        "weights": {"bravo": 2},
        "budget_safe": False,
    },
    "cheap": {
        "strategy": "fill_first",
        "models": {
            "default": "gpt-5.5",
            "background": "gpt-5.4-mini",
            "think": "gpt-5.5-pro",
            "long_context": "gpt-5.5-long",
            "image": "gpt-5.5-vision",
        },
        "long_context_tokens": 2_000,
    },
}


def routed(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["x-quotapool-route"].split("credential=")[1]


def post(h: Harness, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    with h.http() as http:
        return http.post(path, json=body, headers=headers)


def hello() -> dict[str, Any]:
    return {"model": "gpt-5.5", "input": f"hi {uuid.uuid4()}"}


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    return harness(routing={"strategy": "sequential"}, profiles=PROFILES)


def test_profile_by_header_or_path_each_with_its_strategy_credentials_and_weights(
    h: Harness,
) -> None:
    assert {routed(post(h, "/v1/responses", hello())) for _ in range(3)} == {"alpha"}
    fast = [
        routed(post(h, "/v1/responses", hello(), **{"x-quotapool-profile": "fast"}))
        for _ in range(6)
    ]
    assert Counter(fast) == {"bravo": 4, "charlie": 2}  # its subset, its weights
    by_path = [routed(post(h, "/p/fast/v1/responses", hello())) for _ in range(3)]
    assert set(by_path) <= {"bravo", "charlie"}
    client = openai.OpenAI(base_url=f"{h.base}/p/fast/v1", api_key="k", max_retries=0)
    with client:  # a tool that only lets you set a base URL
        raw = client.responses.with_raw_response.create(model="gpt-5.5", input="x")
    assert raw.headers["x-quotapool-route"].startswith("round_robin; credential=")
    rows = h.rows(13)
    assert [r["profile"] for r in rows] == ["default"] * 3 + ["fast"] * 10
    assert rows[-1]["path"] == "/p/fast/v1/responses"


def test_an_unknown_profile_is_a_400_naming_the_known_ones(h: Harness) -> None:
    response = post(h, "/v1/responses", hello(), **{"x-quotapool-profile": "turbo"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "'turbo'" in message and "cheap, default, fast" in message
    client = anthropic.Anthropic(base_url=f"{h.base}/p/nope", api_key="k", max_retries=0)
    with client, pytest.raises(anthropic.BadRequestError, match="Unknown routing profile 'nope'"):
        client.messages.create(model="claude-x", max_tokens=5, messages=[])
    assert h.fake.seen == []


SCENARIOS: list[tuple[dict[str, Any], str, str]] = [
    ({"model": "gpt-5.5", "input": "hello"}, "default", "gpt-5.5"),
    ({"model": "gpt-5.3-codex-mini", "input": "summarize"}, "background", "gpt-5.4-mini"),
    ({"model": "gpt-5.5", "input": "x", "reasoning": {"effort": "high"}}, "think", "gpt-5.5-pro"),
    ({"model": "gpt-5.5", "input": "x" * 9_000}, "long_context", "gpt-5.5-long"),
    (
        {"model": "gpt-5.5", "input": "find it", "tools": [{"type": "web_search"}]},
        "web_search",
        "gpt-5.5",  # no model of its own: the profile's default
    ),
    (
        {
            "model": "gpt-5.5",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                    ],
                }
            ],
        },
        "image",
        "gpt-5.5-vision",
    ),
]


def test_scenarios_choose_the_model_sent_and_the_log_shows_both(h: Harness) -> None:
    for body, _, _ in SCENARIOS:
        assert post(h, "/p/cheap/v1/responses", body).status_code == 200
    sent = [seen.model for seen in h.fake.seen]
    assert sent == [model for _, _, model in SCENARIOS]
    rows = h.rows(len(SCENARIOS))
    assert [(r["scenario"], r["model"], r["sent_model"]) for r in rows] == [
        (scenario, body["model"], model) for body, scenario, model in SCENARIOS
    ]
    assert post(h, "/v1/responses", SCENARIOS[1][0]).status_code == 200  # default: as asked
    assert h.fake.seen[-1].model == "gpt-5.3-codex-mini"


def test_rotation_counters_are_per_profile_and_skip_ineligible_credentials(
    harness: HarnessFactory,
) -> None:
    h = harness(routing={"strategy": "round_robin"}, profiles={"other": {}})
    h.qp.pool.apply(StatusSet("bravo", 0.0, Status.PAUSED, "operator"))
    default = [routed(post(h, "/v1/responses", hello())) for _ in range(4)]
    other = [routed(post(h, "/p/other/v1/responses", hello())) for _ in range(2)]
    assert default == ["alpha", "charlie"] * 2
    assert other == ["alpha", "charlie"]  # its own counters, not the default's
    alpha = h.state("alpha").rotations
    assert alpha == {"gpt-5.5": 2, "other/gpt-5.5": 1}
    assert h.state("bravo").rotations == {}  # paused: filtered before any strategy ran


def test_least_cost_prices_the_model_the_scenario_sends(harness: HarnessFactory) -> None:
    creds = [
        {"kind": "openai", "name": name, "api_key": "sk-openai", "prices": prices}
        for name, prices in (
            ("key-a", {"gpt-4.1": 10.0, "gpt-4.1-nano": 0.1}),
            ("key-b", {"gpt-4.1": 2.0, "gpt-4.1-nano": 0.5}),
        )
    ]
    profiles = {"budget": {"strategy": "least_cost", "models": {"background": "gpt-4.1-nano"}}}
    h = harness(credentials=creds, routing={"strategy": "least_cost"}, profiles=profiles)
    small = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert routed(post(h, "/p/budget/v1/chat/completions", small)) == "key-a"  # nano is cheap
    big = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "another talk"}]}
    assert routed(post(h, "/p/budget/v1/chat/completions", big)) == "key-b"
    decision = json.loads(h.rows(2)[0]["decision"])[0]
    assert decision["reason"] == "cheapest: gpt-4.1-nano at $0.1 per million tokens"


def test_the_pool_view_shows_the_profiles(h: Harness) -> None:
    with h.http() as http:
        profiles = http.get("/quotapool/pool").json()["profiles"]
    assert sorted(profiles) == ["cheap", "default", "fast"]
    assert profiles["fast"]["credentials"] == ["bravo", "charlie"]
    assert profiles["fast"]["weights"] == {"bravo": 2.0}
    assert profiles["default"]["strategy"] == "sequential"
    assert profiles["cheap"]["models"]["background"] == "gpt-5.4-mini"


def test_profiles_need_credentials_that_exist_only_at_run_time(harness: HarnessFactory) -> None:
    creds = codex_credentials()[:1]
    h = harness(credentials=creds, profiles={"ghost": {"credentials": ["nobody"]}})
    response = post(h, "/p/ghost/v1/responses", hello())
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert message.startswith("no credential of routing profile 'ghost' serves model 'gpt-5.5'")
