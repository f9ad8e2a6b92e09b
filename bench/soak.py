"""Memory over a long run: quotapool's RSS while it serves Codex and `/v1/responses` traffic
side by side (the mix that grew it from 125 to 601 MB over 161,000 requests).

A pool of 4 ChatGPT accounts on the shipped fake upstream; half the requests are the Codex CLI's
(`/backend-api/codex/responses`, streamed, `store: false`), half are `/v1/responses` from an
SDK (store on: each answer's conversation is kept to expand `previous_response_id`, a third of
them continuing the one before). RSS is sampled every `--every` requests; the growth after
warm-up (the first sample past `--warmup` requests) is what must stay flat.

    .venv/bin/python -m bench.soak --requests 200000
    .venv/bin/python -m bench.soak --requests 200000 --conversations-mb 8 --warmup 60000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import LOAD_CPU, PROXY_CPU, free_port, process, rss_mb, write_pool

CODEX = {
    "model": "gpt-5.5",
    "instructions": "You are a coding agent.",
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ],
    "stream": True,
    "store": False,
}


async def load(
    proxy: str, requests: int, every: int, pid: int, concurrency: int
) -> list[tuple[int, float]]:
    """Send `requests` requests; (requests sent, RSS MB) every `every` of them."""
    samples = [(0, rss_mb(pid))]
    sent = 0
    failed = 0
    next_sample = every

    async def one(session: aiohttp.ClientSession, n: int, previous: list[str | None]) -> None:
        nonlocal failed
        if n % 2 == 0:
            async with session.post(f"{proxy}/backend-api/codex/responses", json=CODEX) as answer:
                await answer.read()
                failed += answer.status != 200
            return
        body: dict[str, Any] = {"model": "gpt-5.5", "input": f"question {n}"}
        if n % 3 == 0 and previous[0] is not None:
            body["previous_response_id"] = previous[0]
        async with session.post(f"{proxy}/v1/responses", json=body) as answer:
            payload = await answer.json()
            failed += answer.status != 200
            previous[0] = payload.get("id") if answer.status == 200 else None

    async def worker(session: aiohttp.ClientSession, start: int) -> None:
        nonlocal sent, next_sample
        previous: list[str | None] = [None]
        n = start
        while sent < requests:
            sent += 1
            await one(session, n, previous)
            n += concurrency
            if sent >= next_sample:
                next_sample += every
                samples.append((sent, rss_mb(pid)))
                kept = await conversations_mb(session, proxy)
                print(
                    f"{sent:>8} requests  RSS {samples[-1][1]:7.1f} MB  "
                    f"conversations kept in memory {kept:5.1f} MB",
                    flush=True,
                )

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, i) for i in range(concurrency)))
    if failed:
        print(f"{failed} requests failed", file=sys.stderr)
    return samples


async def conversations_mb(session: aiohttp.ClientSession, proxy: str) -> float:
    """What the kept conversations take, as `/metrics` says."""
    async with session.get(f"{proxy}/metrics") as answer:
        text = await answer.text()
    found = re.search(r'^quotapool_memory_bytes\{store="conversations"\} (\S+)$', text, re.M)
    return float(found[1]) / 2**20 if found else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--conversations-mb",
        type=int,
        default=64,
        help="response_items_memory_bytes, in MiB (a smaller bound fills within a shorter run)",
    )
    args = parser.parse_args()
    upstream_port, proxy_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    home = Path(tempfile.mkdtemp(prefix="qp-soak-"))
    write_pool(home, upstream, 4, "codex")
    python = sys.executable
    fake = [
        python,
        "-m",
        "quotapool.testing.fake_upstream",
        "--port",
        str(upstream_port),
        "--accounts",
        "4",
    ]
    qp = [python, "-m", "quotapool.cli.main", "serve", "--port", str(proxy_port)]
    env = {
        "QUOTAPOOL_HOME": str(home),
        "QUOTAPOOL_LOG_LEVEL": "warning",
        "QUOTAPOOL_METRICS_PUBLIC": "true",
        "QUOTAPOOL_RESPONSE_ITEMS_MEMORY_BYTES": str(args.conversations_mb * 2**20),
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(fake, upstream_port, LOAD_CPU))
        served = stack.enter_context(process(qp, proxy_port, PROXY_CPU, env, "soak"))
        started = time.monotonic()
        samples = asyncio.run(
            load(
                f"http://127.0.0.1:{proxy_port}",
                args.requests,
                args.every,
                served.pid,
                args.concurrency,
            )
        )
        took = time.monotonic() - started
    warm = next((rss for sent, rss in samples if sent >= args.warmup), samples[-1][1])
    peak = max(rss for _, rss in samples)
    print(
        f"\n{samples[-1][0]} requests in {took:.0f} s: RSS {samples[0][1]:.1f} MB at start, "
        f"{warm:.1f} MB after {args.warmup} (warm-up), {samples[-1][1]:.1f} MB at the end "
        f"(max {peak:.1f}); growth after warm-up {samples[-1][1] - warm:+.1f} MB"
    )


if __name__ == "__main__":
    main()
