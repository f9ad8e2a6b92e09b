"""An outage is not a usage limit: every upstream failing is a 503 (never 429 or
`usage_limit_reached`), costs at most one upstream call per client request beyond one probe per
credential, and the pool serves again within seconds of the upstream's recovery."""

from __future__ import annotations

import time

import openai
import pytest

from quotapool.testing.fake_upstream import server_error
from tests.conftest import HarnessFactory

TOKENS = ("tok-a", "tok-b", "tok-c")


def body(n: int) -> dict[str, object]:
    """A new conversation each time (the same one would stay on its account)."""
    return {"model": "gpt-5.5", "input": f"question {n}", "stream": True}


def test_a_6_s_outage_is_a_503_does_not_amplify_and_recovers_in_seconds(
    harness: HarnessFactory,
) -> None:
    h = harness()
    for token in TOKENS:
        h.fake.account(token).always = server_error(500)
    seen_before = len(h.fake.seen)
    statuses: list[int] = []
    bodies: list[bytes] = []
    with h.http() as http:
        start = time.monotonic()
        while time.monotonic() - start < 6.0:
            response = http.post("/backend-api/codex/responses", json=body(len(statuses)))
            statuses.append(response.status_code)
            bodies.append(response.content)
            time.sleep(0.05)
        calls = len(h.fake.seen) - seen_before
        for token in TOKENS:
            h.fake.account(token).always = None
        recovered = time.monotonic()
        served: set[str] = set()
        answers = 0
        while len(served) < 3 and time.monotonic() - recovered < 30:
            response = http.post("/backend-api/codex/responses", json=body(1000 + answers))
            answers += 1
            if response.status_code == 200:
                served.add(response.headers["x-quotapool-route"].split("credential=")[1])
            time.sleep(0.05)
        back_in = time.monotonic() - recovered
    print(
        f"\noutage 6 s: {len(statuses)} client requests, {calls} upstream calls, statuses "
        f"{sorted(set(statuses))}; every credential serving again {back_in:.1f} s after recovery"
    )
    assert set(statuses) <= {500, 502, 503} and 503 in statuses
    assert not any(b"usage_limit" in body for body in bodies)
    assert calls <= len(statuses) + len(TOKENS)
    assert served == {"alpha", "bravo", "charlie"} and back_in < 6  # the longest backoff: 5 s
    # The 503 says why, in the Codex dialect, with a Retry-After the CLI can use.
    last = next(b for s, b in zip(statuses, bodies, strict=True) if s == 503)
    assert b'"code":"upstream_unavailable"' in last and b"upstream 500" in last


def test_sdk_clients_fail_fast_when_the_pool_is_out_for_long(harness: HarnessFactory) -> None:
    """Past a minute of Retry-After, the SDKs are told not to retry (x-should-retry: false)."""
    from quotapool.testing.fake_upstream import usage_limit

    h = harness()
    for token in TOKENS:
        h.fake.account(token).always = usage_limit(time.time() + 3 * 3600)
    client = openai.OpenAI(
        base_url=f"{h.base}/v1", api_key="k", max_retries=2
    )  # would sleep Retry-After (hours) without the header
    start = time.monotonic()
    with pytest.raises(openai.RateLimitError, match="try again"):
        client.responses.create(model="gpt-5.5", input="hi")
    client.close()
    assert time.monotonic() - start < 5
    with h.http() as http:
        response = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"})
    assert response.status_code == 429 and response.headers["x-should-retry"] == "false"
    assert int(response.headers["retry-after"]) > 3 * 3600 - 60
