"""Gated models (served from an additional quota) through the real server: their own quota
is learned from every signal, shown, and protects them; a spent standard window does not."""

from __future__ import annotations

import time
import uuid

import httpx

from quotapool.domain.state import Status
from quotapool.testing.fake_upstream import FakeUpstream
from tests.conftest import Harness, HarnessFactory

SPARK = "gpt-5.3-codex-spark"


def ask(h: Harness, model: str) -> httpx.Response:
    with h.http() as http:
        return http.post("/v1/responses", json={"model": model, "input": f"hi {uuid.uuid4()}"})


def routed(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["x-quotapool-route"].split("credential=")[1]


def gated(h: Harness, name: str) -> dict[str, object]:
    with h.http() as http:
        pool = http.get("/quotapool/pool").json()
    row = next(r for r in pool["credentials"] if r["name"] == name)
    return row["additional"].get("GPT-5.3-Codex-Spark") or {}


def test_the_additional_quota_is_learned_shown_and_kept_under_budget(
    harness: HarnessFactory,
) -> None:
    def spark(fake: FakeUpstream, _base: str) -> None:
        fake.account("tok-a").gated_used = 97.0
        fake.account("tok-b").gated_used = 20.0
        fake.account("tok-c").gated_used = 40.0

    h = harness(
        before_start=spark,
        usage_poll_interval=0.1,
        routing={"strategy": "round_robin", "gated_models": {SPARK: "GPT-5.3-Codex-Spark"}},
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not gated(h, "charlie"):
        time.sleep(0.05)
    # wham/usage `additional_rate_limits`: the pool view shows each account's gated quota.
    assert gated(h, "alpha")["primary"]["used_percent"] == 97.0  # type: ignore[index]
    names = [routed(ask(h, SPARK)) for _ in range(6)]
    assert "alpha" not in names  # its gated quota is nearly spent: budget-safe protects it
    assert sorted(set(names)) == ["bravo", "charlie"]
    # Response headers (`x-codex-bengalfox-primary-used-percent`) update it with each answer.
    h.fake.account("tok-b").gated_used = 63.0
    for _ in range(2):
        ask(h, SPARK)
    assert gated(h, "bravo")["primary"]["used_percent"] == 63.0  # type: ignore[index]
    # Standard requests never look at the gated quota: alpha serves them.
    assert "alpha" in {routed(ask(h, "gpt-5.5")) for _ in range(3)}


def test_a_spent_standard_window_still_serves_gated_models(harness: HarnessFactory) -> None:
    h = harness(routing={"strategy": "sequential", "gated_models": {SPARK: "codex_bengalfox"}})
    h.fake.account("tok-a").standard_spent_until = time.time() + 600
    assert routed(ask(h, "gpt-5.5")) == "bravo"  # alpha's usage_limit_reached: failed over
    assert h.state("alpha").status is Status.QUOTA_EXCEEDED
    assert routed(ask(h, SPARK)) == "alpha"  # the gated model has its own quota
    assert routed(ask(h, SPARK)) == "alpha"
    assert routed(ask(h, "gpt-5.5")) == "bravo"  # standard requests still skip it
    assert h.state("alpha").status is Status.QUOTA_EXCEEDED
