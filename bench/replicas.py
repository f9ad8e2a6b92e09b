"""One worker vs two sharing the pool through Redis, and how fast replicas learn from each other.

    .venv/bin/python -m bench.replicas      # ~3 minutes; Redis at 127.0.0.1:6379 (database 7)

In one run, interleaved over `--rounds` (the median of each figure), on the same fake upstream (4 OpenAI keys, chat passed through): quotapool with one worker and no
Redis, one worker with Redis, two workers with Redis (`serve --workers 2`), each measured with wrk
(chat, non-stream; c=1 for latency, c=16 and c=64 for throughput), nothing pinned: the workers,
the fake upstream and wrk share the machine's cores. The CPU time of quotapool's processes per
request says what two workers would serve on cores of their own. Then two replicas on two ports: a usage
limit is hit through replica A, and replica B's pool view is polled until it shows the account
limited; the time from A's request to B knowing it, over `--samples` limits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.run import BODIES, PATHS, cpu_seconds, free_port, process, write_pool, wrk

REDIS_BASE = "redis://127.0.0.1:6379"
REDIS = f"{REDIS_BASE}/7"
ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"


def quotapool(
    home: Path,
    upstream: str,
    port: int,
    *args: str,
    redis_url: str | None = None,
    strategy: str = "",
    credentials: int = 4,
) -> Any:
    write_pool(home, upstream, credentials, "openai")
    text = (home / "quotapool.toml").read_text()
    head = f'redis_url = "{redis_url}"\n' if redis_url else ""
    tail = f'\n[routing]\nstrategy = "{strategy}"\n' if strategy else ""
    (home / "quotapool.toml").write_text(head + text + tail)
    command = [sys.executable, "-m", "quotapool.cli.main", "serve", "--port", str(port), *args]
    env = {"QUOTAPOOL_HOME": str(home), "QUOTAPOOL_LOG_LEVEL": "warning"}
    return process(command, port, ALL_CPUS, env, f"quotapool-{port}")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and every process under it (`serve --workers N` and its workers)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    tree, grew = {pid}, True
    while grew:
        found = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    total = 0.0
    for member in tree:
        with contextlib.suppress(OSError):
            total += cpu_seconds(member)
    return total


def throughput(base: str, pid: int, seconds: float) -> dict[str, float]:
    url, body = base + PATHS["chat"], BODIES["chat"]
    wrk(url, body, 16, 1)  # warm up
    figures: dict[str, float] = {}
    _, _, figures["p50_c1_ms"], _ = wrk(url, body, 1, seconds)
    for concurrency in (16, 64):
        time.sleep(0.5)
        before = tree_cpu_seconds(pid)
        count, figures[f"rps_c{concurrency}"], _, _ = wrk(url, body, concurrency, seconds)
        figures[f"cpu_us_c{concurrency}"] = (tree_cpu_seconds(pid) - before) * 1e6 / count
    time.sleep(0.5)
    return figures


def propagation(a: str, b: str, upstream: str, samples: int) -> list[float]:
    """Milliseconds from sending A the request that meets a usage limit to B's pool view
    showing the account limited."""
    found: list[float] = []
    with httpx.Client(timeout=10) as http:
        for i in range(samples):  # cred-0 … cred-(i-1) are out: A sends to cred-i
            http.post(f"{upstream}/_fake/accounts/tok-{i}", json={"usage_limit_seconds": 600})
            start = time.perf_counter()
            http.post(a + PATHS["chat"], json=BODIES["chat"]).raise_for_status()
            while True:
                pool = http.get(f"{b}/quotapool/pool").json()["credentials"]
                if next(c for c in pool if c["name"] == f"cred-{i}")["status"] != "active":
                    break
                if time.perf_counter() - start > 5:
                    raise RuntimeError("replica B never learnt the limit")
            found.append((time.perf_counter() - start) * 1000)
            time.sleep(0.05)
    return found


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds."""
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    redis.Redis.from_url(REDIS).flushdb()
    upstream_port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    fake = [sys.executable, "-m", "quotapool.testing.fake_upstream", "--port", str(upstream_port)]
    with contextlib.ExitStack() as stack:
        accounts = str(max(4, args.samples + 1))
        stack.enter_context(
            process([*fake, "--accounts", accounts, "--deltas", "20"], upstream_port, ALL_CPUS)
        )
        targets = []
        for name, workers, url in (
            ("1 worker, no Redis", 1, None),
            ("1 worker, Redis", 1, f"{REDIS_BASE}/6"),
            ("2 workers, Redis", 2, f"{REDIS_BASE}/5"),
        ):  # each its own Redis database: none folds another's events
            if url:
                redis.Redis.from_url(url).flushdb()
            port, home = free_port(), Path(tempfile.mkdtemp(prefix="qp-replicas-"))
            served = stack.enter_context(
                quotapool(home, upstream, port, "--workers", str(workers), redis_url=url)
            )
            targets.append((name, f"http://127.0.0.1:{port}", served.pid))
        time.sleep(1.0)  # connected, leader chosen
        measured: dict[str, list[dict[str, float]]] = {}
        for number in range(args.rounds):  # interleaved: drift hits every target alike
            for name, base, pid in targets:
                measured.setdefault(name, []).append(throughput(base, pid, args.seconds))
                print(f"round {number + 1}: {name} {measured[name][-1]}", flush=True)
        rows = [(name, _median(found)) for name, found in measured.items()]
        redis.Redis.from_url(REDIS).flushdb()
        ports = free_port(), free_port()
        homes = [Path(tempfile.mkdtemp(prefix="qp-replicas-")) for _ in ports]
        for port, home in zip(ports, homes, strict=True):
            stack.enter_context(
                quotapool(
                    home,
                    upstream,
                    port,
                    redis_url=REDIS,
                    strategy="sequential",
                    credentials=args.samples + 1,
                )
            )
        time.sleep(1.0)
        a, b = (f"http://127.0.0.1:{port}" for port in ports)
        delays = propagation(a, b, upstream, args.samples)
    one, redis_on, two = (figures for _, figures in rows)
    print(
        "\n| quotapool | chat c=1 p50 | chat c=16 req/s | chat c=64 req/s | CPU/req c=16 | CPU/req c=64 |"
    )
    print("|---|---|---|---|---|---|")
    for name, f in rows:
        print(
            f"| {name} | {f['p50_c1_ms']:.2f} ms | {f['rps_c16']:,.0f} | {f['rps_c64']:,.0f} "
            f"| {f['cpu_us_c16']:.0f} µs | {f['cpu_us_c64']:.0f} µs |"
        )
    print(
        f"\nRedis on adds {redis_on['p50_c1_ms'] - one['p50_c1_ms']:+.2f} ms at c=1; two workers "
        f"serve {two['rps_c16'] / redis_on['rps_c16']:.2f}× (c=16) and "
        f"{two['rps_c64'] / redis_on['rps_c64']:.2f}× (c=64) one worker's requests. Each "
        f"request costs the two {two['cpu_us_c64']:.0f} µs of CPU against one worker's "
        f"{redis_on['cpu_us_c64']:.0f} µs (c=64): on two cores of their own (upstream and load "
        f"elsewhere) they would serve {2 * redis_on['cpu_us_c64'] / two['cpu_us_c64']:.2f}× "
        "one worker's requests."
    )
    q = statistics.quantiles(delays, n=100)
    print(
        f"A limit hit through replica A, known to replica B after (from A's request, "
        f"{len(delays)} limits): p50 {statistics.median(delays):.1f} ms, p99 {q[98]:.1f} ms (interpolated), "
        f"max {max(delays):.1f} ms."
    )


if __name__ == "__main__":
    main()
