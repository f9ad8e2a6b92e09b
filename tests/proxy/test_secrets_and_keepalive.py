"""Secrets never leak; quiet streams get keep-alives."""

from __future__ import annotations

import logging

import httpx
import pytest

from quotapool.testing.fake_upstream import server_error
from tests.conftest import Harness, HarnessFactory

SECRETS = ("tok-a", "tok-b", "tok-c", "sk-openai", "sk-ant", "client-key")


def test_no_secret_in_logs_records_or_error_bodies(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).always = server_error(502)
    with h.http() as http:
        bodies = [
            http.post(
                "/v1/responses",
                json={"model": "gpt-5.5", "input": "x"},
                headers={"authorization": "Bearer client-key"},
            ).text,
            http.post(
                "/v1/messages",
                json={"model": "m", "max_tokens": 1, "messages": []},
                headers={"x-api-key": "client-key"},
            ).text,
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": "x"}).text,
        ]
    rows = h.rows(3)
    dump = "\n".join(bodies) + repr(rows) + caplog.text + repr(h.qp.pool.snapshot())
    for secret in SECRETS:
        assert secret not in dump
    # The client's own key never reaches the upstream either.
    assert all("client-key" not in repr(seen.headers) for seen in h.fake.seen)


def test_slow_stream_gets_keepalives(harness: HarnessFactory) -> None:
    h = harness(sse_keepalive_seconds=0.05)
    account = h.fake.account("tok-a")
    account.event_delay, account.deltas = 0.2, 2
    with (
        httpx.Client(base_url=h.base, timeout=10) as http,
        http.stream(
            "POST", "/v1/responses", json={"model": "gpt-5.5", "input": "x", "stream": True}
        ) as response,
    ):
        body = b"".join(response.iter_bytes())
    assert b": keep-alive\n\n" in body
    assert body.count(b"event: response.output_text.delta") == 2
    assert b"event: response.completed" in body
