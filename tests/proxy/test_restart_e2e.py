"""A restart changes nothing a client sees: conversations stay on their accounts."""

from __future__ import annotations

from pathlib import Path

import httpx

from quotapool.compose import build
from quotapool.config import Settings
from quotapool.server import run_in_thread as serve_pool
from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread
from tests.conftest import CODEX, codex_credentials


def route(http: httpx.Client, **body: object) -> tuple[str, dict[str, object]]:
    headers = body.pop("headers", {})
    payload = {"model": "gpt-5.5", "input": "hi", **body}
    response = http.post("/v1/responses", json=payload, headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return response.headers["x-quotapool-route"].split("credential=")[1], response.json()


def test_conversations_and_response_owners_survive_a_restart(tmp_path: Path) -> None:
    fake = FakeUpstream()
    for token, name, account in CODEX:
        fake.add(token, name=name, account_id=account)
    with run_in_thread(fake) as upstream:
        settings = Settings(
            home=tmp_path,
            port=0,
            codex_base_url=f"{upstream}/backend-api",
            credentials=codex_credentials(),  # type: ignore[arg-type]
            routing={"strategy": "round_robin"},  # type: ignore[arg-type]
            usage_poll_interval=0,
        )
        with serve_pool(build(settings)) as base, httpx.Client(base_url=base) as http:
            assert route(http, input="warm-up")[0] == "alpha"
            bound, _ = route(http, headers={"session-id": "s-1"})
            owner, answer = route(http, input="remember this")
            assert (bound, owner) == ("bravo", "charlie")
        # A new process on the same home: its rotation starts over at alpha…
        with serve_pool(build(settings)) as base, httpx.Client(base_url=base) as http:
            # …but the conversation is still on its account (warm prompt cache)…
            assert route(http, headers={"session-id": "s-1"})[0] == "bravo"
            # …and the continuation still reaches the one account that knows the response.
            assert route(http, previous_response_id=answer["id"], input="go on")[0] == "charlie"
            sent = fake.seen[-1].body  # expanded from what the first process kept
            assert "previous_response_id" not in sent
            said = [p["text"] for item in sent["input"] for p in item["content"]]
            assert said == ["remember this", "Hi from charlie!", "go on"]
            assert route(http, input="a new one")[0] == "alpha"
