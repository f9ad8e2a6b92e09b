"""Mixed pools: a credential that cannot honour a request's parameters is left out before
routing (named in the decision), and the 400 comes only when no credential of the profile can."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import orjson
import pytest

from tests.conftest import Harness, HarnessFactory, codex_credentials
from tests.proxy.test_warmup_e2e import routing as warmup_routing
from tests.proxy.test_warmup_e2e import warmups

ACCOUNT_AND_KEY = [
    *codex_credentials()[:1],
    {"kind": "openai", "name": "openai-key", "api_key": "sk-openai", "models": ["gpt-5.5"]},
]


def chat(h: Harness, **extra: object) -> httpx.Response:
    body = {"model": "gpt-5.5", "messages": [{"role": "user", "content": str(uuid.uuid4())}]}
    with h.http() as http:
        return http.post("/v1/chat/completions", json={**body, **extra})


def test_a_parameter_one_credential_cannot_carry_goes_to_one_that_can(
    harness: HarnessFactory,
) -> None:
    h = harness(credentials=ACCOUNT_AND_KEY, routing={"strategy": "round_robin"})
    answers = [chat(h, temperature=0.2) for _ in range(4)]
    assert [a.status_code for a in answers] == [200] * 4
    assert {a.headers["x-quotapool-route"] for a in answers} == {
        "round_robin; credential=openai-key"
    }
    decision = orjson.loads(h.rows(4)[-1]["decision"])[0]
    (excluded,) = decision["excluded"]
    assert excluded["credential"] == "alpha"
    assert "cannot carry temperature (sampling temperature)" in excluded["reason"]
    assert chat(h).headers["x-quotapool-route"].endswith("alpha")  # without it, both serve


def test_when_none_can_the_400_names_every_parameter(harness: HarnessFactory) -> None:
    h = harness(credentials=codex_credentials(), routing=warmup_routing())
    client = h.openai()
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="gpt-5.5",
            temperature=0.2,
            top_p=0.5,
            messages=[{"role": "user", "content": "hi"}],
        )
    body = refused.value.body
    assert isinstance(body, dict) and body["param"] == "temperature"
    assert "temperature (sampling temperature), top_p (nucleus sampling)" in body["message"]
    assert "lenient" in body["message"]
    # A request refused here, before or after its credential was chosen, warms nothing.
    assert chat(h, messages=[]).status_code == 400
    time.sleep(0.3)
    assert warmups(h) == [] and h.fake.seen == []


def test_an_unknown_previous_response_id_gets_quotapools_own_400(harness: HarnessFactory) -> None:
    h = harness(credentials=codex_credentials())
    with h.http() as http:
        answer = http.post(
            "/v1/responses",
            json={"model": "gpt-5.5", "input": "go on", "previous_response_id": "resp_unknown"},
        )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "previous_response_id" and "send the whole" in error["message"]
    assert "Unsupported parameter" not in answer.text and h.fake.seen == []


def test_what_a_chatgpt_account_leaves_out_is_named(harness: HarnessFactory) -> None:
    h = harness(credentials=codex_credentials())
    answer = chat(h, metadata={"team": "a"}, store=True)
    assert answer.status_code == 200
    assert answer.headers["x-quotapool-dropped"] == "metadata, store"
    with h.http() as http:
        stored = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "x", "store": True})
    assert stored.status_code == 200 and stored.headers["x-quotapool-dropped"] == "store"
    assert "x-quotapool-dropped" not in chat(h).headers


def test_models_of_anthropic_keys_without_a_list(harness: HarnessFactory) -> None:
    h = harness(credentials=[{"kind": "anthropic", "name": "ant", "api_key": "sk-ant"}])
    with h.http() as http:
        listed = http.get("/v1/models", headers={"anthropic-version": "2023-06-01"}).json()
        openai_listed = http.get("/v1/models").json()
    ids = [m["id"] for m in listed["data"]]
    assert ids and all(i.startswith("claude-") for i in ids)
    assert [m["id"] for m in openai_listed["data"]] == ids
