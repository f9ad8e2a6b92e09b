"""docker-compose.yml's topology without Docker: its balancer (deploy/nginx.conf, run by the
real nginx with only the addresses changed to loopback) in front of two `quotapool serve`
replicas sharing the real PostgreSQL and Redis. Through it: a rolling restart and a replica
killed under load, the Codex WebSocket transport, a dashboard session, and the real Codex CLI
and Claude Code keeping a tool turn on one account while their requests alternate between the
replicas."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import cast

import aiohttp
import httpx

from quotapool.secrets import KEY_FILE_NAME
from quotapool.testing.fake_upstream import FakeUpstream
from tests.conftest import Harness, HarnessFactory
from tests.e2e.test_claude_code import claude
from tests.e2e.test_codex_cli import CHATGPT_MODE, chatgpt_login, codex
from tests.faults.process import free_port, serve
from tests.proxy.test_websocket import HEADERS, exchange
from tests.store.conftest import REDIS
from tests.store.test_replicas_pg import STREAM, busy, logged, streaming_pair
from tests.store.test_replication import _connected, wait_for

ROOT = Path(__file__).resolve().parents[2]
BODY = {"model": "gpt-5.5", "input": "hi"}


@contextlib.contextmanager
def nginx(tmp_path: Path, replicas: list[int]) -> Iterator[str]:
    """deploy/nginx.conf as docker-compose.yml mounts it, its two replicas at `replicas`
    (loopback ports); its own address. Its logs and temporary files stay in `tmp_path`."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    port = free_port()
    for compose, here in (
        ("quotapool-1:8410", f"127.0.0.1:{replicas[0]}"),
        ("quotapool-2:8410", f"127.0.0.1:{replicas[1]}"),
        ("listen 8410;", f"listen 127.0.0.1:{port};"),
    ):
        assert compose in conf, f"deploy/nginx.conf has no {compose!r} any more"
        conf = conf.replace(compose, here)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    temporary = "".join(
        f"  {kind}_temp_path {prefix / kind};\n" for kind in ("client_body", "proxy")
    )
    conf = conf.replace("http {\n", f"http {{\n  access_log off;\n{temporary}", 1)
    (prefix / "nginx.conf").write_text(conf)
    as_root = " user root;" if os.geteuid() == 0 else ""  # (its workers write in `tmp_path`)
    command = [
        shutil.which("nginx") or "/usr/sbin/nginx",
        *("-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")),
        *("-g", f"daemon off; pid {prefix / 'nginx.pid'};{as_root}"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base), timeout=10)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def _through(front: str) -> Harness:
    """What the CLI helpers need of a harness (its address): the balancer's."""
    return cast(Harness, type("Front", (), {"base": front}))


def _answers(base: str) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    return False


class Clients:
    """`count` clients sending requests back to back through one address (each keeping its
    connection to it, as an SDK does); what they got."""

    def __init__(
        self,
        base: str,
        count: int,
        body: Mapping[str, object],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base, self.body, self.headers = base, body, dict(headers or {})
        self.answered: list[str] = []
        """Request ids of the complete answers."""
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(count)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while not self.stop.is_set():
                try:
                    answer = http.post("/v1/responses", json=self.body, headers=self.headers)
                    complete = answer.status_code == 200 and b'"completed"' in answer.content
                    what = f"{answer.status_code} {answer.text[:200]}"
                except httpx.TransportError as exc:
                    complete, what = False, repr(exc)
                if complete:
                    self.answered.append(answer.headers["x-quotapool-request-id"])
                else:
                    self.failures.append(what)

    @contextlib.contextmanager
    def running(self) -> Iterator[Clients]:
        for thread in self.threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in self.threads:
                thread.join(timeout=30)


def test_a_rolling_restart_behind_the_compose_balancer_fails_no_request(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    """Each replica in turn stopped (SIGTERM: it drains, then closes) and started again, as
    `docker compose up -d` does when the image changes, while six clients stream through
    nginx: no client sees a failure, every answer has its row."""
    shared = streaming_pair(fake, database, tmp_path, drain_seconds=1)
    ports = [free_port(), free_port()]
    homes = [tmp_path / "a", tmp_path / "b"]
    with contextlib.ExitStack() as stack:
        running = [
            stack.enter_context(serve(h, shared, port=p)) for h, p in zip(homes, ports, strict=True)
        ]
        wait_for(lambda: all(len(busy(r)) == 3 for r in running), timeout=20)
        front = stack.enter_context(nginx(tmp_path, ports))
        with Clients(front, 6, STREAM).running() as clients:
            for n in range(2):
                time.sleep(1.0)
                running[n].process.send_signal(signal.SIGTERM)
                running[n].process.wait(timeout=30)
                time.sleep(0.5)  # the other alone serves meanwhile
                running[n] = stack.enter_context(serve(homes[n], shared, port=ports[n]))
            time.sleep(1.0)
    assert not clients.failures, clients.failures[:5]
    assert len(clients.answered) > 60
    missing = set(clients.answered) - logged(database)
    assert not missing, sorted(missing)


def test_a_replica_killed_behind_the_compose_balancer_costs_no_waiting_client_its_answer(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    """kill -9 under load: the answers that had not begun (no byte sent to the client) are
    asked again of the other replica by nginx (`proxy_next_upstream … non_idempotent`); the
    clients never notice."""
    shared = streaming_pair(fake, database, tmp_path)  # each answer is read for ~50 ms
    ports = [free_port(), free_port()]
    with (
        serve(tmp_path / "a", shared, port=ports[0]) as a,
        serve(tmp_path / "b", shared, port=ports[1]) as b,
    ):
        wait_for(lambda: len(busy(a)) == len(busy(b)) == 3, timeout=20)
        with nginx(tmp_path, ports) as front, Clients(front, 6, BODY).running() as clients:
            time.sleep(1.0)
            in_flight = sum(count for count, _ in busy(b))
            os.kill(b.process.pid, signal.SIGKILL)
            b.process.wait(timeout=10)
            time.sleep(1.0)
    assert in_flight > 0  # b had answers under way when it died
    assert not clients.failures, clients.failures[:5]
    assert len(clients.answered) > 30


def test_the_codex_websocket_transport_passes_the_compose_balancer(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    shared = streaming_pair(fake, database, tmp_path)
    ports = [free_port(), free_port()]
    with (
        serve(tmp_path / "a", shared, port=ports[0]),
        serve(tmp_path / "b", shared, port=ports[1]),
        nginx(tmp_path, ports) as front,
    ):

        async def session() -> list[list[dict[str, object]]]:
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(f"{front}/backend-api/codex/responses", headers=HEADERS) as ws,
            ):
                base = {"model": "gpt-5.5", "stream": True, "store": False}
                first = await exchange(ws, {**base, "input": "hi"})
                second = await exchange(
                    ws, {**base, "input": "again", "previous_response_id": _id(first)}
                )
                return [first, second]

        turns = asyncio.run(session())
    assert [events[-1]["type"] for events in turns] == ["response.completed"] * 2


def _id(events: list[dict[str, object]]) -> str:
    response = events[0]["response"]
    assert isinstance(response, dict)
    return str(response["id"])


def test_a_dashboard_session_holds_whichever_replica_the_balancer_picks(
    fake: tuple[FakeUpstream, str], database: str, tmp_path: Path
) -> None:
    """Replicas with homes of their own, the secret key copied (as the README says): a login
    through nginx opens a session every replica honours, page after page (without the copy,
    the other replica sends the login page back)."""
    shared = streaming_pair(fake, database, tmp_path)
    ports = [free_port(), free_port()]
    with serve(tmp_path / "a", shared, port=ports[0]):
        (tmp_path / "b" / "home").mkdir(parents=True)
        shutil.copy2(tmp_path / "a" / "home" / KEY_FILE_NAME, tmp_path / "b" / "home")
        made = subprocess.run(
            [sys.executable, "-m", "quotapool.cli.main", "admin", "token",
             "--config", str(tmp_path / "a" / "quotapool.toml")],
            env={**os.environ, "QUOTAPOOL_HOME": str(tmp_path / "a" / "home")},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        token = made.stdout.strip().splitlines()[-1]
        with (
            serve(tmp_path / "b", shared, port=ports[1]),
            nginx(tmp_path, ports) as front,
            httpx.Client(base_url=front, timeout=10) as browser,
        ):
            wait_for(lambda: _logs_in(browser, token), timeout=10)  # both read the token
            pages = [browser.get("/quotapool/") for _ in range(6)]  # round robin: a, b, …
            api = [browser.get("/quotapool/api/credentials") for _ in range(4)]
    assert all(page.status_code == 200 and 'name="token"' not in page.text for page in pages)
    assert [answer.status_code for answer in api] == [200] * 4


def _logs_in(browser: httpx.Client, token: str) -> bool:
    """Logged in, and the session holds on the next two pages (one from each replica)."""
    browser.cookies.clear()
    if browser.post("/quotapool/login", data={"token": token}).status_code != 303:
        return False
    return all('name="token"' not in browser.get("/quotapool/").text for _ in range(2))


def test_a_codex_cli_tool_turn_over_http_stays_on_one_account_across_the_replicas(
    database: str,
    harness: HarnessFactory,
    tmp_path: Path,
) -> None:
    """The real Codex CLI over HTTP through nginx, which sends each of its requests to the next
    replica: the follow-up after the tool call carries the turn state the first answer gave
    out, and reaches the same account whichever replica receives it."""
    a = harness(redis_url=REDIS, database_url=database)
    b = harness(redis_url=REDIS, database_url=database, upstream_of=a)
    for h in (a, b):
        wait_for(lambda h=h: _connected(h))
    for token in ("tok-a", "tok-b", "tok-c"):
        a.fake.account(token).tool_call = ("exec_command", '{"cmd": "echo quotapool-tool"}')
    home = tmp_path / "codex"
    chatgpt_login(a, home)
    ports = [int(h.base.rsplit(":", 1)[1]) for h in (a, b)]
    with nginx(tmp_path, ports) as front:
        result = codex(_through(front), home, CHATGPT_MODE, "run the tool")
    assert result.returncode == 0, result.stderr
    turns = [s for s in a.fake.seen if s.path == "/backend-api/codex/responses"]
    assert len(turns) >= 2 and turns[-1].headers.get("x-codex-turn-state")  # a follow-up
    assert len({s.account for s in turns}) == 1, [s.account for s in turns]


def test_a_claude_code_tool_turn_keeps_its_account_across_the_replicas(
    database: str,  # (before the harness: its schema is dropped after the replicas stop)
    harness: HarnessFactory,
    tmp_path: Path,
) -> None:
    """Claude Code through nginx, round robin on both sides: the tool call's answer goes to
    the other replica, which knows the session's account from the first."""
    a = harness(redis_url=REDIS, database_url=database, routing={"strategy": "round_robin"})
    b = harness(
        redis_url=REDIS,
        database_url=database,
        upstream_of=a,
        routing={"strategy": "round_robin"},
    )
    for h in (a, b):
        wait_for(lambda h=h: _connected(h))
    with a.http() as http:  # alpha's turn is over on both: only a replica that did not hear
        assert http.post("/v1/responses", json=BODY).status_code == 200  # would pick it again
    time.sleep(0.2)
    for token in ("tok-a", "tok-b", "tok-c"):
        a.fake.account(token).tool_call = ("Bash", '{"command": "echo quotapool-tool-ok"}')
    ports = [int(h.base.rsplit(":", 1)[1]) for h in (a, b)]
    with nginx(tmp_path, ports) as front:
        answer = claude(
            _through(front), tmp_path / "home", "run the echo", "--allowedTools", "Bash"
        )
    assert answer["is_error"] is False and answer["num_turns"] == 2
    turns = [s for s in a.fake.seen if s.path == "/backend-api/codex/responses"]
    assert len(turns) >= 2 and len({s.account for s in turns[-2:]}) == 1, turns
