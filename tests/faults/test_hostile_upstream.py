"""A hostile or broken upstream cannot take the process down: every buffer it could fill has a
bound (an event, a decompressed body, its headers, an error body), every wait a deadline (to
the first whole event and between events), and what goes wrong before the client's first byte
fails over to the next credential and counts against the hostile one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Harness, HarnessFactory
from tests.faults.hostile import gzip_bomb, hostile_upstream

MiB = 1024 * 1024


def rss() -> int:
    """This process's resident memory (the proxy runs in it, on a thread)."""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found[1]) * 1024


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    gzip_bomb()  # made once, before any memory is measured
    with hostile_upstream() as base:
        yield base


def pool(harness: HarnessFactory, hostile: str, way: str) -> Harness:
    credentials: list[dict[str, Any]] = [
        {"kind": "openai", "name": "hostile", "api_key": "sk-h", "priority": 1},
        {"kind": "openai", "name": "good", "api_key": "sk-openai"},
    ]
    credentials[0]["base_url"] = f"{hostile}/{way}/v1"
    return harness(
        credentials=credentials,
        routing={"strategy": "sequential"},
        max_upstream_event_bytes=MiB,
        first_event_timeout_seconds=1.0,
        read_timeout=2.0,
    )


def chat(h: Harness, stream: bool) -> httpx.Response:
    body = {"model": "gpt-4.1", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=h.base, timeout=30) as http:
        return http.post("/v1/chat/completions", json=body)


@pytest.mark.parametrize(
    ("way", "stream"),
    [
        ("nolines", True),  # +340 MB and quadratic CPU, then 137 MB relayed as a 200
        ("bomb", False),  # 199 KB of gzip: +581 MB
        ("bomb-error", False),  # the same as an error body
        ("headers", False),  # 962 KB of headers relayed
        ("drip", True),  # a byte a second: never timed out
        ("badname", True),  # a 500 with a traceback
    ],
)
def test_the_pool_fails_over_from_a_hostile_upstream_within_its_bounds(
    harness: HarnessFactory, hostile: str, way: str, stream: bool
) -> None:
    h = pool(harness, hostile, way)
    before = rss()
    response = chat(h, stream)
    grown = rss() - before
    print(f"\n{way}: RSS +{grown / MiB:.1f} MB")  # the closing note's figures (pytest -s)
    assert response.status_code == 200, response.text
    assert response.headers["x-quotapool-route"].endswith("credential=good")
    assert grown < 48 * MiB
    assert h.state("hostile").consecutive_failures == 1  # counted against its breaker
    row = h.rows(1)[-1]
    assert row["attempts"] == 2 and row["credential"] == "good"


def test_an_event_past_the_bound_after_the_first_byte_ends_the_stream(
    harness: HarnessFactory, hostile: str
) -> None:
    h = pool(harness, hostile, "midstream")
    before = rss()
    response = chat(h, True)
    assert rss() - before < 48 * MiB
    assert response.status_code == 200
    assert response.text.count('"content": "hi"') == 1  # the first event was relayed
    assert "upstream stream broken: EventTooLarge" in response.text
    assert response.text.endswith("data: [DONE]\n\n")
    assert h.state("hostile").consecutive_failures == 1
    assert "EventTooLarge" in h.rows(1)[-1]["error"]
