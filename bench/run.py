"""Direct-to-upstream vs through quotapool, in one run, on one machine.

The fake upstream and the load generator share one core, quotapool gets the other (taskset),
so every quotapool figure is per proxy core. quotapool runs in its real configuration: request
log on (SQLite), decision explanations on, the default strategy, 4 credentials.

    python bench/run.py                 # full run: 3 rounds, the median of each (~11 minutes)
    python bench/run.py --quick         # one short round, for a smoke check
    python bench/run.py --memory 200000 # also: RSS over N requests
    python bench/run.py --litellm       # also: LiteLLM's proxy, side by side
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).parent
RESULTS = HERE / "results"
PROXY_CPU, LOAD_CPU = "0", "1"
BODIES: dict[str, dict[str, Any]] = {
    "chat": {"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]},
    "responses": {"model": "gpt-5.5", "input": "hi"},
    "messages": {
        "model": "claude-sonnet-5-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    },
}
PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}
"""`bench.instructions` counts any of them; `bench/run.sh`'s rounds measure chat and responses."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTLE_SECONDS = 0.5
"""Pause after each wrk run. wrk drops its connections with requests in flight; a target still
serving those when the next run opens 64 new connections accepts some of them 150-300 ms late
(seen at the accept: the event loop itself never stalled that long). That is the previous
measurement's leftover, not the next one's figure."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def process(
    args: list[str], port: int, cpu: str, env: dict[str, str] | None = None, name: str = ""
) -> Iterator[subprocess.Popen[bytes]]:
    name = name or Path(args[2] if args[1] == "-m" else args[1]).name
    RESULTS.mkdir(exist_ok=True)
    log = (RESULTS / f"{name}.log").open("wb")  # read it when a figure looks wrong
    proc = subprocess.Popen(
        ["taskset", "-c", cpu, *args], env={**os.environ, **(env or {})}, stdout=log, stderr=log
    )
    try:
        wait_port(port)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@dataclass
class Result:
    target: str
    api: str
    mode: str
    concurrency: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    ttfb_p50_ms: float | None = None
    cpu_ms_per_request: float | None = None


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNIT[unit]


def wrk(
    url: str, body: dict[str, Any], concurrency: int, seconds: float
) -> tuple[int, float, float, float]:
    """requests, req/s, p50 ms, p99 ms — from wrk with a POST script."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    payload = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{payload}"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer tok-0"\n'
    )
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()
    found = [
        re.search(pattern, out, re.M)
        for pattern in (
            r"(\d+) requests in",
            r"Requests/sec:\s+([\d.]+)",
            r"^\s+50%\s+(\S+)\s*$",
            r"^\s+99%\s+(\S+)\s*$",
        )
    ]
    if "Non-2xx" in out or "timeout" in out or not all(found):
        raise RuntimeError(f"wrk saw errors or timeouts against {url}:\n{out}")
    total, rps, p50, p99 = (m.group(1) for m in found if m is not None)
    return int(total), float(rps), _ms(p50), _ms(p99)


def with_wrk(
    target: str,
    url: str,
    api: str,
    concurrency: int,
    seconds: float,
    pid: int | None,
    *,
    stream: bool = False,
    model: str | None = None,
) -> Result:
    """One wrk measurement after a 1 s warm-up; CPU per request of `pid` when given. Streams
    are read whole (rate and total time; time to first byte needs `streams`)."""
    body = {**BODIES[api], **({"model": model} if model else {})}
    body = {**body, "stream": True} if stream else body
    wrk(url, body, concurrency, 1)  # warm up connections
    time.sleep(SETTLE_SECONDS)
    cpu0 = cpu_seconds(pid) if pid is not None else 0.0
    total, rps, p50, p99 = wrk(url, body, concurrency, seconds)
    cpu = (cpu_seconds(pid) - cpu0) * 1000 / total if pid is not None else None
    time.sleep(SETTLE_SECONDS)
    mode = "stream" if stream else "non-stream"
    print(
        f"{api:9} {mode:10} c={concurrency:<3} {target:9} {rps:8.0f} /s p50 {p50:.2f} ms p99 {p99:.2f} ms",
        flush=True,
    )
    return Result(target, api, mode, concurrency, total, rps, p50, p99, None, cpu)


async def _streams(
    url: str, body: dict[str, Any], concurrency: int, seconds: float
) -> tuple[int, float, list[float], list[float]]:
    ttfbs: list[float] = []
    totals: list[float] = []
    deadline = time.perf_counter() + seconds
    payload = json.dumps({**body, "stream": True}).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer tok-0"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            async with session.post(url, data=payload, headers=headers) as response:
                assert response.status == 200, response.status
                first = True
                async for _chunk in response.content.iter_any():
                    if first:
                        ttfbs.append(time.perf_counter() - start)
                        first = False
            totals.append(time.perf_counter() - start)

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return len(totals), len(totals) / elapsed, ttfbs, totals


def streams(
    url: str, body: dict[str, Any], concurrency: int, seconds: float
) -> tuple[int, float, float, float, float]:
    """Streams with an asyncio client (on the load core): count, streams/s, ttfb p50, total p50/p99 (ms)."""
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    count, rate, ttfbs, totals = asyncio.run(_streams(url, body, concurrency, seconds))
    q = statistics.quantiles(totals, n=100)
    return (
        count,
        rate,
        statistics.median(ttfbs) * 1000,
        statistics.median(totals) * 1000,
        q[98] * 1000,
    )


def one_round(targets: tuple[tuple[str, str, int | None], ...], seconds: float) -> Iterator[Result]:
    """Every measurement once, each target right after the others (drift hits them alike)."""
    for api in ("chat", "responses"):
        for concurrency in (1, 16, 64):
            for target, base, pid in targets:
                yield with_wrk(target, base + PATHS[api], api, concurrency, seconds, pid)
        for target, base, pid in targets:
            cpu0 = cpu_seconds(pid) if pid is not None else 0.0
            count, rate, ttfb, p50, p99 = streams(base + PATHS[api], BODIES[api], 1, seconds)
            cpu = (cpu_seconds(pid) - cpu0) * 1000 / count if pid is not None else None
            print(
                f"{api:9} stream     c=1   {target:9} {rate:8.0f} /s ttfb p50 {ttfb:.2f} ms total p50 {p50:.2f} ms",
                flush=True,
            )
            yield Result(target, api, "stream", 1, count, rate, p50, p99, ttfb, cpu)
        for target, base, pid in targets:
            yield with_wrk(target, base + PATHS[api], api, 16, seconds, pid, stream=True)


def median(measured: list[Result]) -> Result:
    """The round with the median rate (one whole measurement, so its figures belong together)."""
    return sorted(measured, key=lambda r: r.rps)[len(measured) // 2]


POOLS = ("openai", "codex", "anthropic", "chat-only")


def write_config(
    home: Path, upstream: str, accounts: int, codex: bool = False, anthropic: bool = False
) -> None:
    """`accounts` OpenAI keys (passthrough), or with `codex` as many ChatGPT accounts (chat and
    Messages are translated onto their Responses API); `anthropic`: Anthropic keys instead of
    OpenAI ones (Messages passed through)."""
    pool = "codex" if codex else "anthropic" if anthropic else "openai"
    write_pool(home, upstream, accounts, pool)


def write_pool(home: Path, upstream: str, accounts: int, pool: str) -> None:
    """`accounts` credentials of one kind (`POOLS`): OpenAI keys, ChatGPT accounts, Anthropic
    keys, or OpenAI-compatible keys with only the chat API. The default strategy."""
    lines = [f'codex_base_url = "{upstream}/backend-api"\n'] if pool == "codex" else []
    for i in range(accounts):
        if pool == "codex":
            entry = f'kind = "codex"\naccount_id = "acct-{i}"'
        elif pool == "anthropic":
            entry = f'kind = "anthropic"\nbase_url = "{upstream}"'
        else:
            entry = f'kind = "openai"\nbase_url = "{upstream}/v1"'
            entry += '\napis = ["chat"]' if pool == "chat-only" else ""
        lines.append(f'[[credentials]]\n{entry}\nname = "cred-{i}"\napi_key = "tok-{i}"\n')
    (home / "quotapool.toml").write_text("\n".join(lines))


TRANSLATIONS = (
    ("chat", ("openai", "codex", "anthropic")),
    ("responses", ("openai", "chat-only", "anthropic")),
    ("messages", ("anthropic", "codex", "openai", "chat-only")),
)
"""Each client API on each upstream API, its passthrough first: `--translations` measures them
side by side (at c=16, streamed and not)."""


def translation_round(pools: dict[str, tuple[str, int]], seconds: float) -> Iterator[Result]:
    for api, upstreams in TRANSLATIONS:
        for stream in (False, True):
            for pool in upstreams:
                base, pid = pools[pool]
                target = f"on-{pool}"
                model = "claude-sonnet-5-5" if pool == "anthropic" else None  # what it serves
                yield with_wrk(
                    target, base + PATHS[api], api, 16, seconds, pid, stream=stream, model=model
                )


def egress_variants(stack: contextlib.ExitStack, home: Path) -> list[tuple[str, dict[str, str]]]:
    """Every credential behind a proxy (microsocks: SOCKS5; tinyproxy: HTTP CONNECT), each on
    the load core: the OpenAI pool through either, and a pool of ChatGPT accounts through
    SOCKS5 (its Responses stream is the Codex CLI's)."""
    socks_port, http_port = free_port(), free_port()
    microsocks = ["microsocks", "-i", "127.0.0.1", "-p", str(socks_port)]
    stack.enter_context(process(microsocks, socks_port, LOAD_CPU, name="microsocks"))
    config = home / "tinyproxy.conf"
    config.write_text(
        f"Port {http_port}\nListen 127.0.0.1\nTimeout 120\nMaxClients 1024\nLogLevel Error\n"
        f'LogFile "{home / "tinyproxy.log"}"\nDisableViaHeader Yes\n'
    )
    tinyproxy = ["tinyproxy", "-d", "-c", str(config)]
    stack.enter_context(process(tinyproxy, http_port, LOAD_CPU, name="tinyproxy"))
    setting = "QUOTAPOOL_NETWORK__PROXY_URL"
    socks = {setting: f"socks5h://127.0.0.1:{socks_port}"}
    return [
        ("via-socks", socks),
        ("via-http", {setting: f"http://127.0.0.1:{http_port}"}),
        ("via-codex", {}),
        ("via-codex-socks", socks),
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    upstream_port, proxy_port, floor_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    proxy = f"http://127.0.0.1:{proxy_port}"
    floor = f"http://127.0.0.1:{floor_port}"
    home = Path(tempfile.mkdtemp(prefix="qp-bench-"))
    write_config(home, upstream, 4)
    python = sys.executable
    memory: dict[str, Any] = {}
    fake_cmd = [
        python,
        "-m",
        "quotapool.testing.fake_upstream",
        "--port",
        str(upstream_port),
        "--accounts",
        str(max([4, *args.pool_size])),
        "--deltas",
        str(args.deltas),
    ]
    qp_cmd = [python, "-m", "quotapool.cli.main", "serve", "--port", str(proxy_port)]
    floor_cmd = [python, str(HERE / "floor.py"), upstream, str(floor_port)]
    env = {"QUOTAPOOL_HOME": str(home), "QUOTAPOOL_LOG_LEVEL": "warning"}
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(fake_cmd, upstream_port, LOAD_CPU))
        stack.enter_context(process(floor_cmd, floor_port, PROXY_CPU))
        qp = stack.enter_context(process(qp_cmd, proxy_port, PROXY_CPU, env))
        variants = []
        wanted = [*args.variant, *([("via-codex", {})] if args.codex else [])]
        if args.egress:
            wanted += egress_variants(stack, home)
        wanted += [(f"pool-{size}", {}) for size in args.pool_size]
        wanted = list(dict(wanted).items())  # (--codex and --egress both name via-codex)
        for name, overrides in wanted:  # the same quotapool, other settings or credentials
            port, variant_home = free_port(), Path(tempfile.mkdtemp(prefix="qp-bench-"))
            size = int(name.removeprefix("pool-")) if name.startswith("pool-") else 4
            write_config(variant_home, upstream, size, codex=name.startswith("via-codex"))
            command = [*qp_cmd[:-1], str(port)]
            variant_env = {**env, "QUOTAPOOL_HOME": str(variant_home), **overrides}
            started = stack.enter_context(process(command, port, PROXY_CPU, variant_env, name))
            variants.append((name, f"http://127.0.0.1:{port}", started.pid))
        pools = {"openai": (proxy, qp.pid)}
        for pool in POOLS[1:] if args.translations else ():
            port, pool_home = free_port(), Path(tempfile.mkdtemp(prefix="qp-bench-"))
            write_pool(pool_home, upstream, 4, pool)
            command = [*qp_cmd[:-1], str(port)]
            pool_env = {**env, "QUOTAPOOL_HOME": str(pool_home)}
            started = stack.enter_context(process(command, port, PROXY_CPU, pool_env, pool))
            pools[pool] = (f"http://127.0.0.1:{port}", started.pid)
        rss_start = rss_mb(qp.pid)
        targets = (
            ("direct", upstream, None),
            ("floor", floor, None),
            ("quotapool", proxy, qp.pid),
            *variants,
        )
        rounds: dict[tuple[str, str, int, str], list[Result]] = {}
        translated: dict[tuple[str, str, int, str], list[Result]] = {}
        for number in range(1, args.rounds + 1):
            print(f"round {number} of {args.rounds}", flush=True)
            for result in one_round(targets, args.seconds):
                key = (result.api, result.mode, result.concurrency, result.target)
                rounds.setdefault(key, []).append(result)
            for result in translation_round(pools, args.seconds) if args.translations else ():
                key = (result.api, result.mode, result.concurrency, result.target)
                translated.setdefault(key, []).append(result)
        results = [median(measured) for measured in rounds.values()]
        rss_end = rss_mb(qp.pid)
        if args.memory:
            memory = memory_run(proxy, qp.pid, args.memory)
        litellm = measure_litellm(home, upstream, args.seconds) if args.litellm else []
    shutil.rmtree(home, ignore_errors=True)
    return {
        "variants": [name for name, _ in wanted],
        "litellm": [asdict(r) for r in litellm],
        "results": [asdict(r) for r in results],
        "translations": [asdict(median(measured)) for measured in translated.values()],
        "rss_mb": {"start": rss_start, "end": rss_end},
        "memory": memory,
    }


LITELLM = HERE / ".litellm"
"""A venv of its own for LiteLLM (its dependencies stay out of quotapool's)."""
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no network: its bundled price list
    "LITELLM_LOG": "ERROR",
    "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",  # loopback-only benchmark
}


def litellm_executable() -> str:
    """LiteLLM's proxy in bench/.litellm, installed there on first use."""
    executable = LITELLM / "bin" / "litellm"
    if not executable.exists():
        print("installing litellm[proxy] into bench/.litellm (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM)], check=True)
        pip = [str(LITELLM / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "litellm[proxy]"], check=True)
    return str(executable)


def measure_litellm(home: Path, upstream: str, seconds: float) -> list[Result]:
    """LiteLLM's proxy with 4 deployments of one model on the same fake upstream (as
    quotapool's 4 credentials), on the proxy core: non-streaming rows only."""
    deployments = "".join(
        f"  - model_name: gpt-5.5\n    litellm_params:\n      model: openai/gpt-5.5\n"
        f"      api_base: {upstream}/v1\n      api_key: tok-{i}\n"
        for i in range(4)
    )
    config = home / "litellm.yaml"
    config.write_text(f"model_list:\n{deployments}litellm_settings:\n  telemetry: false\n")
    port = free_port()
    command = [litellm_executable(), "--config", str(config), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--num_workers", "1"]
    results: list[Result] = []
    with process(command, port, PROXY_CPU, LITELLM_ENV, name="litellm") as proc:
        for api in ("chat", "responses"):
            url = f"http://127.0.0.1:{port}{PATHS[api]}"
            for concurrency in (1, 16, 64):
                try:
                    results.append(with_wrk("litellm", url, api, concurrency, seconds, proc.pid))
                except RuntimeError as exc:  # timed out or failed: say so, go on
                    print(f"litellm {api}: {exc}".splitlines()[0], flush=True)
                    break
    return results


def memory_run(proxy: str, pid: int, requests: int) -> dict[str, Any]:
    """Send `requests` requests in wrk runs and sample RSS between them."""
    samples = [rss_mb(pid)]
    sent = 0
    while sent < requests:
        total, *_ = wrk(proxy + PATHS["chat"], BODIES["chat"], 16, 5)
        sent += total
        samples.append(rss_mb(pid))
    print(
        f"memory: {sent} requests, RSS {samples[0]:.1f} → {samples[-1]:.1f} MB (max {max(samples):.1f})",
        flush=True,
    )
    return {
        "requests": sent,
        "rss_samples_mb": samples,
        "growth_mb": samples[-1] - samples[1] if len(samples) > 1 else 0.0,
    }


def table(data: dict[str, Any]) -> str:
    variants = data.get("variants", [])
    rows = [r for r in data["results"] if r["target"] not in variants]
    out = [
        "| API | mode | c | direct /s | bare floor /s | quotapool /s | vs floor | direct p50 | quotapool p50 | added p50 | quotapool p99 | added TTFB p50 | proxy CPU/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for direct, floor, qp in zip(rows[::3], rows[1::3], rows[2::3], strict=True):
        ttfb = (
            f"{qp['ttfb_p50_ms'] - direct['ttfb_p50_ms']:+.2f} ms"
            if qp["ttfb_p50_ms"] is not None
            else "-"
        )
        out.append(
            f"| {qp['api']} | {qp['mode']} | {qp['concurrency']} | {direct['rps']:,.0f} | {floor['rps']:,.0f} | {qp['rps']:,.0f} | {qp['rps'] / floor['rps']:.0%} "
            f"| {direct['p50_ms']:.2f} ms | {qp['p50_ms']:.2f} ms | {qp['p50_ms'] - direct['p50_ms']:+.2f} ms | {qp['p99_ms']:.2f} ms | {ttfb} | {qp['cpu_ms_per_request']:.3f} ms |"
        )
    if variants:
        out += variant_table(data["results"], variants)
    if data["litellm"]:
        quotapool = {
            (r["api"], r["concurrency"]): r
            for r in rows
            if r["target"] == "quotapool" and r["mode"] == "non-stream"
        }
        out += [
            "\nLiteLLM, same run, same core, 4 deployments on the same fake upstream:\n",
            "| API | c | LiteLLM /s | quotapool /s | quotapool ÷ LiteLLM | LiteLLM p50 | LiteLLM CPU/req |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in data["litellm"]:
            qp = quotapool[(r["api"], r["concurrency"])]
            out.append(
                f"| {r['api']} | {r['concurrency']} | {r['rps']:,.0f} | {qp['rps']:,.0f} | {qp['rps'] / r['rps']:.0f}× "
                f"| {r['p50_ms']:.2f} ms | {r['cpu_ms_per_request']:.2f} ms |"
            )
    if data.get("translations"):
        out += translation_table(data["translations"])
    rss = data["rss_mb"]
    out.append(
        f"\nquotapool RSS: {rss['start']:.1f} MB at start, {rss['end']:.1f} MB after the run."
    )
    if data["memory"]:
        m = data["memory"]
        out.append(
            f"Memory run: {m['requests']:,} requests, RSS growth after warm-up {m['growth_mb']:+.1f} MB."
        )
    return "\n".join(out)


def variant_table(results: list[dict[str, Any]], variants: list[str]) -> list[str]:
    """quotapool beside itself with other settings, measured in the same rounds."""
    by_row: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    for r in results:
        by_row.setdefault((r["api"], r["mode"], r["concurrency"]), {})[r["target"]] = r
    header = " | ".join(f"{v} /s | {v} CPU/req" for v in variants)
    out = [
        "\nThe same quotapool with other settings, same run (each ratio is to quotapool as configured above):\n",
        f"| API | mode | c | quotapool /s | quotapool CPU/req | {header} |",
        "|---|---|---|---|---|" + "---|---|" * len(variants),
    ]
    for (api, mode, concurrency), cells in by_row.items():
        qp = cells["quotapool"]
        line = f"| {api} | {mode} | {concurrency} | {qp['rps']:,.0f} | {qp['cpu_ms_per_request']:.3f} ms |"
        for v in variants:
            other = cells[v]
            line += (
                f" {other['rps']:,.0f} ({other['rps'] / qp['rps']:.0%}) |"
                f" {other['cpu_ms_per_request']:.3f} ms ({other['cpu_ms_per_request'] / qp['cpu_ms_per_request']:.0%}) |"
            )
        out.append(line)
    return out


def translation_table(results: list[dict[str, Any]]) -> list[str]:
    """Each client API on each upstream API beside its passthrough, same run."""
    by_cell = {(r["api"], r["mode"], r["target"].removeprefix("on-")): r for r in results}
    out = [
        "\nEach client API on each kind of upstream, same run, c=16 (translated ÷ passthrough):\n",
        "| client API | mode | upstream | req/s | vs passthrough | p50 | CPU/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for api, upstreams in TRANSLATIONS:
        for mode in ("non-stream", "stream"):
            own = by_cell[(api, mode, upstreams[0])]
            for pool in upstreams:
                r = by_cell[(api, mode, pool)]
                kind = "passthrough" if pool == upstreams[0] else "translated"
                out.append(
                    f"| {api} | {mode} | {pool} ({kind}) | {r['rps']:,.0f} | {r['rps'] / own['rps']:.0%} "
                    f"| {r['p50_ms']:.2f} ms | {r['cpu_ms_per_request']:.3f} ms |"
                )
    return out


def variant(text: str) -> tuple[str, dict[str, str]]:
    """`no-metrics:QUOTAPOOL_METRICS=false` → ("no-metrics", {"QUOTAPOOL_METRICS": "false"})."""
    name, _, assignments = text.partition(":")
    overrides = dict(a.split("=", 1) for a in assignments.split(",") if a)
    if not name or not overrides:
        raise argparse.ArgumentTypeError("give NAME:VARIABLE=VALUE[,VARIABLE=VALUE]")
    return name, overrides


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="measure everything N times, report the median"
    )
    parser.add_argument("--quick", action="store_true", help="1 s per measurement")
    parser.add_argument("--deltas", type=int, default=20, help="text deltas per streamed answer")
    parser.add_argument("--memory", type=int, default=0, help="also send N requests and sample RSS")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--litellm", action="store_true", help="also measure LiteLLM (installed in bench/.litellm)"
    )
    parser.add_argument(
        "--codex",
        action="store_true",
        help="also measure a pool of ChatGPT accounts (via-codex): chat translated onto their "
        "Responses API, responses passed through with their output items collected",
    )
    parser.add_argument(
        "--egress",
        action="store_true",
        help="also measure every credential behind a SOCKS5 and an HTTP proxy (via-socks, "
        "via-http; via-codex-socks for ChatGPT accounts; microsocks and tinyproxy from Debian)",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        action="append",
        default=[],
        help="also measure quotapool with a pool of N OpenAI keys (pool-N), e.g. 1000 (repeat)",
    )
    parser.add_argument(
        "--no-translations",
        dest="translations",
        action="store_false",
        help="skip measuring each client API on each kind of upstream (translated vs passthrough)",
    )
    parser.add_argument(
        "--variant",
        type=variant,
        action="append",
        default=[],
        help="also measure quotapool with these environment settings, e.g. "
        "no-metrics:QUOTAPOOL_METRICS=false or access-log:QUOTAPOOL_LOG_LEVEL=info (repeat)",
    )
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk (bench/run.sh does it)")
    data = run(args)
    data["machine"] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "proxy_cpu": PROXY_CPU,
        "load_cpu": LOAD_CPU,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(data, indent=2))
    markdown = table(data)
    (args.out / "latest.md").write_text(markdown + "\n")
    print("\n" + markdown)


if __name__ == "__main__":
    main()
