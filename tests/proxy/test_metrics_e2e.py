"""`GET /metrics` through the real server, read by prometheus-client's own parser."""

from __future__ import annotations

import re
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from quotapool.testing.fake_upstream import usage_limit
from tests.conftest import HarnessFactory
from tests.proxy.test_client_keys_e2e import cli


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_for_the_admin_token(harness: HarnessFactory) -> None:
    h = harness(routing={"strategy": "sequential"}, accounts_watch_interval=0.1)
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 600))
    client = h.openai()
    for i in range(3):
        client.responses.create(model="gpt-5.5", input=f"hi {i}")
    h.rows(3)
    with h.http() as http:
        refused = http.get("/metrics")
        assert refused.status_code == 401 and "quotapool admin token" in refused.text
        token = cli(h, "admin", "token").strip().splitlines()[-1]
        admin = {"authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 5
        answer = http.get("/metrics", headers=admin)
        while answer.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)  # until the server has read the new token
            answer = http.get("/metrics", headers=admin)
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    key = ("route", "responses"), ("credential", "bravo"), ("status", "200")
    assert found[("quotapool_requests_total", tuple(sorted(key)))] == 3
    assert found[("quotapool_failovers_total", (("route", "responses"),))] == 1
    assert found[("quotapool_tokens_total", (("credential", "bravo"), ("kind", "input")))] > 0
    assert found[("quotapool_ttfb_seconds_count", (("route", "responses"),))] == 3
    primary = (("credential", "bravo"), ("window", "primary"))
    assert found[("quotapool_quota_used_percent", primary)] == 12
    spent = (("credential", "alpha"), ("status", "quota_exceeded"))
    assert found[("quotapool_credential_status", spent)] == 1
    assert ("quotapool_log_rows_lost_total", (("table", "requests"),)) in found
    assert ("quotapool_in_flight", (("credential", "charlie"),)) in found


def test_public_metrics(harness: HarnessFactory) -> None:
    h = harness(metrics_public=True)
    assert httpx.get(f"{h.base}/metrics").status_code == 200


def test_memory_that_grows_with_traffic_is_shown_with_its_bound(harness: HarnessFactory) -> None:
    h = harness(metrics_public=True)
    with h.http() as http:  # a conversation kept on a Codex account
        assert (
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"}).status_code == 200
        )
        text = http.get("/metrics").text
    taken = re.search(r'^quotapool_memory_bytes\{store="conversations"\} (\S+)$', text, re.M)
    bound = re.search(r'^quotapool_memory_limit_bytes\{store="conversations"\} (\S+)$', text, re.M)
    assert taken is not None and bound is not None
    assert 0 < float(taken[1]) < float(bound[1]) == 64 * 1024 * 1024
    assert 'quotapool_memory_limit_bytes{store="held_rows:requests"}' in text
