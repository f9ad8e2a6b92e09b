"""Codex accounts serve the models their `/codex/models` lists: fetched per account, routed by,
listed; an account whose list is not known serves any model."""

from __future__ import annotations

import time

import httpx

from quotapool.testing.fake_upstream import FakeUpstream
from tests.conftest import Harness, HarnessFactory


def _plans(fake: FakeUpstream, _url: str) -> None:
    fake.account("tok-a").models = ("gpt-5.5", "gpt-5.4")
    fake.account("tok-b").models = ("gpt-5.5", "gpt-5.3-codex")
    fake.account("tok-c").models = ()  # an answer with no list: nothing learnt


def _learnt(h: Harness, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(bool(c.models) for c in h.qp.pool.snapshot().credentials) == count:
            return
        time.sleep(0.05)
    raise AssertionError("the model lists were not fetched")


def test_codex_accounts_serve_the_models_they_list(harness: HarnessFactory) -> None:
    h = harness(before_start=_plans, codex_models_refresh=3600)
    _learnt(h, 2)
    models = {c.name: c.models for c in h.qp.pool.snapshot().credentials}
    assert models == {
        "alpha": frozenset({"gpt-5.5", "gpt-5.4"}),
        "bravo": frozenset({"gpt-5.5", "gpt-5.3-codex"}),
        "charlie": frozenset(),
    }
    with httpx.Client(base_url=h.base, timeout=10) as http:
        for model, served_by in (("gpt-5.4", "alpha"), ("gpt-5.3-codex", "bravo")):
            for _ in range(3):
                answer = http.post("/v1/responses", json={"model": model, "input": "hi"})
                assert answer.status_code == 200
                assert h.fake.seen[-1].account in (served_by, "charlie")
        listed = {m["id"] for m in http.get("/v1/models").json()["data"]}
        assert {"gpt-5.4", "gpt-5.3-codex", "gpt-5.5"} <= listed
    h.fake.account("tok-c").models = ("gpt-5.5",)
    h.qp.pool.serves("charlie", frozenset({"gpt-5.5"}))  # as its next fetch would
    with httpx.Client(base_url=h.base, timeout=10) as http:
        unknown = http.post("/v1/responses", json={"model": "gpt-9-turbo", "input": "hi"})
        assert unknown.status_code == 404
        assert "no credential in the pool serves model 'gpt-9-turbo'" in unknown.text
        claude = http.post(
            "/v1/messages",
            json={
                "model": "claude-sonnet-5-5",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert claude.status_code == 200  # its stand-in, gpt-5.5, is listed
        assert h.fake.seen[-1].model == "gpt-5.5"


def test_a_configured_model_list_wins_over_the_fetched_one(harness: HarnessFactory) -> None:
    credentials = [
        {
            "kind": "codex",
            "name": "alpha",
            "api_key": "tok-a",
            "account_id": "acct-a",
            "models": ["gpt-5.3-codex"],
        },
        {"kind": "codex", "name": "bravo", "api_key": "tok-b", "account_id": "acct-b"},
    ]
    h = harness(credentials=credentials, codex_models_refresh=3600)
    _learnt(h, 2)
    models = {c.name: c.models for c in h.qp.pool.snapshot().credentials}
    assert models["alpha"] == frozenset({"gpt-5.3-codex"})
    assert "gpt-5.4-mini" in models["bravo"]
