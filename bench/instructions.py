"""Instructions per request, quotapool vs the bare floor, counted by valgrind (callgrind).

Wall-clock figures on a shared 2-core machine move ±15 % from run to run; instruction counts
move well under 1 %, so this is the A/B measure for a change to the hot path. It counts
user-space instructions only (not the kernel's share of the syscalls, which both pay alike).

    .venv/bin/python -m bench.instructions                   # chat, non-stream, 3,000 requests each
    .venv/bin/python -m bench.instructions --api responses --stream
    .venv/bin/python -m bench.instructions --api messages --codex   # Anthropic keys vs translated
    .venv/bin/python -m bench.instructions --api responses --conversation-kb 60   # an agent's turn
    .venv/bin/python -m bench.instructions --pool-size 1000   # a pool of 1,000 credentials

Each target is started under callgrind (slow: ~1 minute to start), warmed up, its counters
zeroed, sent `--requests` requests at concurrency 16, then dumped. The fake upstream runs
outside valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from bench.run import (
    BODIES,
    HERE,
    PATHS,
    RESULTS,
    free_port,
    process,
    variant,
    wait_port,
    write_config,
)

CONCURRENCY = 16


def with_conversation(api: str, body: dict[str, Any], kb: int) -> dict[str, Any]:
    """`body` carrying a coding agent's conversation of about `kb` KB (turns of text, tool
    calls and their outputs), as every turn of a Codex CLI or Claude Code session does; a
    Responses turn is unstored, as the Codex CLI sends it."""
    if kb <= 0:
        return body
    text = "Here is the file you asked for, with the change applied. " * 8
    output = "drwxr-xr-x  2 user user 4096 Dec  7 10:00 src\n" * 10
    items: list[dict[str, Any]] = []
    while len(orjson.dumps(items)) < kb * 1024:
        n = len(items)
        if api == "responses":
            items += [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
                {
                    "type": "function_call",
                    "name": "shell",
                    "call_id": f"c{n}",
                    "arguments": '{"command":["ls","-la"]}',
                },
                {"type": "function_call_output", "call_id": f"c{n}", "output": output},
            ]
        else:
            items += [
                {"role": "user", "content": text + output},
                {"role": "assistant", "content": text},
            ]
    if api == "responses":
        return {**body, "input": items, "store": False}
    return {**body, "messages": [*items, *body["messages"]]}


async def _send(url: str, body: bytes, count: int) -> None:
    left = count

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left
        headers = {"content-type": "application/json", "authorization": "Bearer tok-0"}
        while left > 0:
            left -= 1
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 200, response.status
                await response.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))


def _wait_served(url: str, timeout: float) -> None:
    """Until `url` answers: a server may listen before it serves (quotapool binds its port,
    then imports its app, which under valgrind takes minutes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=5)  # (any answer: the bare floor has no /health)
            return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(1)


def count(
    command: list[str], port: int, path: str, body: bytes, requests: int, env: dict[str, str]
) -> float:
    """Instructions per request of `command` (a server listening on `port`)."""
    url = f"http://127.0.0.1:{port}{path}"
    out = Path(tempfile.mkdtemp(prefix="qp-callgrind-"))
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p"]
    log = (out / "valgrind.log").open("wb")
    server = subprocess.Popen(
        [*valgrind, *command], env={**os.environ, **env}, stdout=log, stderr=log
    )
    try:
        wait_port(port, timeout=600)
        _wait_served(f"http://127.0.0.1:{port}/health", timeout=600)
        asyncio.run(_send(url, body, 300))  # warm-up: connections, caches, first GCs
        time.sleep(1)
        subprocess.run(
            ["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True
        )
        asyncio.run(_send(url, body, requests))
        time.sleep(0.6)  # the request log flushes every 0.25 s: count its writes too
        subprocess.run(
            ["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True
        )
    finally:
        server.terminate()
        server.wait(120)
        log.close()
    dump = next(out.glob("cg.*.1"))
    total = next(
        int(line.split()[1])
        for line in dump.read_text().splitlines()
        if line.startswith("summary:")
    )
    shutil.rmtree(out, ignore_errors=True)
    return total / requests


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--api", choices=sorted(PATHS), default="chat")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--variant",
        type=variant,
        action="append",
        default=[],
        help="also count quotapool with these settings, e.g. no-metrics:QUOTAPOOL_METRICS=false "
        "or access-log:QUOTAPOOL_LOG_LEVEL=info (repeat)",
    )
    parser.add_argument(
        "--conversation-kb",
        type=int,
        default=0,
        help="send a conversation of about this many KB with each request (a coding agent's turn)",
    )
    parser.add_argument(
        "--codex",
        action="store_true",
        help="also count a pool of ChatGPT accounts (chat translated onto their Responses API)",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=4,
        help="credentials in each quotapool target's pool (OpenAI keys; 1000: a large team's)",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install -y valgrind")
    RESULTS.mkdir(exist_ok=True)
    plain_body = {**BODIES[args.api], **({"stream": True} if args.stream else {})}
    body = orjson.dumps(with_conversation(args.api, plain_body, args.conversation_kb))
    upstream_port, proxy_port, floor_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    python = sys.executable
    fake = [python, "-m", "quotapool.testing.fake_upstream", "--port", str(upstream_port)]
    quotapool = [python, "-m", "quotapool.cli.main", "serve", "--port", str(proxy_port)]
    floor = [python, str(HERE / "floor.py"), upstream, str(floor_port)]
    path = PATHS[args.api]
    counts = {}
    with process([*fake, "--accounts", str(max(4, args.pool_size))], upstream_port, "1"):
        floor_count = count(floor, floor_port, path, body, args.requests, {})
        # (numpy's OpenBLAS starts a thread per core at import; quotapool does no BLAS, and
        # under valgrind those threads broke the server's connections)
        base = {"QUOTAPOOL_LOG_LEVEL": "warning", "OPENBLAS_NUM_THREADS": "1"}
        for name, overrides in [("as configured", {}), *args.variant]:
            # A home of its own: a variant of an older commit cannot open a database that a
            # newer one migrated.
            home = Path(tempfile.mkdtemp(prefix="qp-bench-"))
            write_config(home, upstream, args.pool_size, anthropic=args.api == "messages")
            env = {**base, "QUOTAPOOL_HOME": str(home), **overrides}
            counts[name] = count(quotapool, proxy_port, path, body, args.requests, env)
            shutil.rmtree(home, ignore_errors=True)
        if args.codex:
            codex_home = Path(tempfile.mkdtemp(prefix="qp-bench-"))
            write_config(codex_home, upstream, 4, codex=True)
            env = {**base, "QUOTAPOOL_HOME": str(codex_home)}
            counts["via-codex"] = count(quotapool, proxy_port, path, body, args.requests, env)
            shutil.rmtree(codex_home, ignore_errors=True)
    mode = "stream" if args.stream else "non-stream"
    size = f", {len(body) / 1024:.0f} KB bodies" if args.conversation_kb else ""
    size += f", {args.pool_size} credentials" if args.pool_size != 4 else ""
    print(f"{args.api} {mode}{size}, {args.requests} requests at c={CONCURRENCY}:")
    print(f"  bare floor  {floor_count / 1000:8.1f} k instructions/request")
    for name, qp_count in counts.items():
        print(f"  quotapool   {qp_count / 1000:8.1f} k instructions/request ({name})")
        print(
            f"  ratio       {qp_count / floor_count:8.2f}×  "
            f"(+{(qp_count - floor_count) / 1000:.1f} k)"
        )


if __name__ == "__main__":
    main()
