"""docker-compose.yml in a real engine, as its comments say to use it: `docker compose up -d`,
a client key and accounts through `docker compose exec quotapool-1 …`, clients through nginx.

The only additions (an override file): nginx's port published on loopback only, the fake
upstream as one more container (the project's image running `quotapool.testing.fake_upstream`)
and the replicas pointed at it. Requests through nginx go to one replica, then the other."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.docker.engine import ROOT
from tests.faults.process import free_port
from tests.store.test_compose import Clients
from tests.store.test_replicas_pg import STREAM

COMPOSE = (ROOT / "docker-compose.yml").read_text()
README_UP = "docker compose up -d"
README_KEY = "docker compose exec quotapool-1 quotapool keys create me"
README_IMPORT = (
    "docker compose exec -T quotapool-1 quotapool accounts import - < ~/.codex/auth.json"
)
ACCOUNTS = ("tok-0", "tok-1", "tok-2")  # the fake's accounts (`--accounts 3`)
OVERRIDE = """
services:
  nginx:
    ports: !override ["127.0.0.1:{port}:8410"]
  quotapool-1:
    environment: &upstream
      QUOTAPOOL_CODEX_BASE_URL: http://fake-upstream:9100/backend-api
      QUOTAPOOL_AUTH_BASE_URL: http://fake-upstream:9100
      QUOTAPOOL_ROUTING__STRATEGY: round_robin
  quotapool-2:
    environment: *upstream
  fake-upstream:
    build: .
    command: ["python", "-m", "quotapool.testing.fake_upstream", "--host", "0.0.0.0",
              "--port", "9100", "--accounts", "3", "--record"]
    ports: ["127.0.0.1:{fake_port}:9100"]
    healthcheck:
      test: ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/_fake/requests', timeout=2)"]
      interval: 1s
"""


@dataclass
class Stack:
    project: str
    files: list[str]
    front: str
    """nginx, on loopback."""
    fake: str
    """The fake upstream's control address, on loopback."""
    key: str = ""

    def compose(self, *args: str, timeout: float = 120, input: str | None = None) -> str:
        command = ["docker", "compose", "-p", self.project, *self.files, *args]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, input=input, cwd=ROOT
        )
        assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def readme(self, line: str, input: str | None = None) -> str:
        """A command docker-compose.yml's comments give, run on this stack (`input` on its
        standard input in place of the file it redirects)."""
        assert line in COMPOSE, f"docker-compose.yml no longer says {line!r}"
        words = shlex.split(line.split(" < ")[0])
        return self.compose(*words[2:], input=input)

    def logged(self) -> dict[str, int]:
        """The request log in the stack's PostgreSQL: request id → status."""
        query = "SELECT request_id, status FROM requests"
        out = self.compose(
            "exec", "-T", "postgres", "psql", "-U", "quotapool", "-d", "quotapool", "-tAF,",
            "-c", query,
        )  # fmt: skip
        return {line.split(",")[0]: int(line.split(",")[1]) for line in out.split()}


@pytest.fixture(scope="module")
def stack(base_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("compose")
    override = folder / "override.yml"
    port, fake_port = free_port(), free_port()
    override.write_text(OVERRIDE.format(port=port, fake_port=fake_port))
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(override)]
    made = Stack(
        f"quotapool-test-{uuid.uuid4().hex[:8]}",
        files,
        front=f"http://127.0.0.1:{port}",
        fake=f"http://127.0.0.1:{fake_port}",
    )
    assert README_UP in COMPOSE
    try:
        made.compose(*shlex.split(README_UP)[2:], "--build", "--wait", timeout=900)
        made.key = made.readme(README_KEY).strip().splitlines()[-1]
        _import_accounts(made)
        yield made
    finally:
        down = subprocess.run(
            ["docker", "compose", "-p", made.project, *files, "down", "-v", "--rmi", "local",
             "--remove-orphans"],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
        assert down.returncode == 0, down.stderr


def _import_accounts(stack: Stack) -> None:
    """Each fake account's Codex login imported as the compose file's comment says."""
    for token in ACCOUNTS:
        login = httpx.get(f"{stack.fake}/_fake/accounts/{token}/auth.json", timeout=10).text
        stack.readme(README_IMPORT, input=login)


def _ask(stack: Stack, body: dict[str, object]) -> httpx.Response:
    """One request through nginx on a new connection (nginx picks the next replica)."""
    headers = {"authorization": f"Bearer {stack.key}"}
    return httpx.post(f"{stack.front}/v1/responses", json=body, headers=headers, timeout=30)


def _replica(answer: httpx.Response) -> str:
    """Which replica answered: each names its request ids with a prefix of its own."""
    return answer.headers["x-quotapool-request-id"].rsplit("-", 1)[0]


def _served(stack: Stack) -> list[dict[str, str]]:
    seen = httpx.get(f"{stack.fake}/_fake/requests", timeout=10).json()
    return [s for s in seen if s["path"] == "/backend-api/codex/responses"]


def test_the_stack_serves_a_client_through_nginx_from_accounts_imported_in_a_container(
    stack: Stack,
) -> None:
    deadline = time.monotonic() + 30  # each replica picks up the imported accounts
    answers: list[httpx.Response] = []
    while len({_replica(a) for a in answers if a.status_code == 200}) < 2:
        assert time.monotonic() < deadline, [a.text for a in answers[-2:]]
        answers.append(_ask(stack, {"model": "gpt-5.5", "input": "hi"}))
        time.sleep(0.1)
    served = [a for a in answers if a.status_code == 200]
    assert all(a.json()["status"] == "completed" for a in served)
    without = httpx.post(f"{stack.front}/v1/responses", json={"model": "gpt-5.5", "input": "x"})
    assert without.status_code == 401  # a client outside needs the key
    _all_logged(stack, [a.headers["x-quotapool-request-id"] for a in served])
    listed = stack.compose("exec", "-T", "quotapool-2", "quotapool", "accounts", "list", "--json")
    assert sorted(json.loads(row)["name"] for row in listed.splitlines()) == [
        "account-0@example.com",
        "account-1@example.com",
        "account-2@example.com",
    ]


def test_a_conversation_alternating_replicas_stays_on_its_account(stack: Stack) -> None:
    """Round robin on accounts, and nginx alternating replicas: every turn after the first
    names the previous response, and each replica sends it to the account that holds it."""
    before = len(_served(stack))
    turns = [_ask(stack, {"model": "gpt-5.5", "input": "turn 0", "store": True})]
    for n in range(1, 6):
        previous = turns[-1].json()["id"]
        turns.append(
            _ask(
                stack, {"model": "gpt-5.5", "input": f"turn {n}", "previous_response_id": previous}
            )
        )
    assert [t.status_code for t in turns] == [200] * 6, [t.text for t in turns]
    assert len({_replica(t) for t in turns}) == 2  # both replicas took turns
    accounts = [s["account"] for s in _served(stack)[before:]]
    assert len(accounts) == 6 and len(set(accounts)) == 1, accounts


def test_a_replica_stopped_under_load_loses_no_request_and_no_row(stack: Stack) -> None:
    """`docker compose stop quotapool-2` (SIGTERM: it drains, finishes what it serves, and
    exits) while six clients stream through nginx, then `start` again: no client sees a
    failure, every answer is in the request log."""
    for token in ACCOUNTS:  # each stream takes ~50 ms: always some in flight
        httpx.post(f"{stack.fake}/_fake/accounts/{token}", json={"event_delay": 0.01})
    headers = {"authorization": f"Bearer {stack.key}"}
    with Clients(stack.front, 6, STREAM, headers).running() as clients:
        time.sleep(2)
        stack.compose("stop", "quotapool-2", timeout=90)
        time.sleep(1)
        stack.compose("start", "quotapool-2", timeout=90)
        time.sleep(3)
    assert not clients.failures, clients.failures[:5]
    replicas = {answer.rsplit("-", 1)[0] for answer in clients.answered}
    assert len(clients.answered) > 30 and len(replicas) >= 3  # the restarted one is new
    _all_logged(stack, clients.answered)


def _all_logged(stack: Stack, answered: list[str]) -> None:
    """Every answer in the request log as a 200 (rows are written in batches: waited for)."""
    deadline = time.monotonic() + 10
    while True:
        logged = stack.logged()
        missing = [answer for answer in answered if logged.get(answer) != 200]
        if not missing:
            return
        assert time.monotonic() < deadline, missing[:5]
        time.sleep(0.5)


def test_the_override_keeps_the_stack_on_loopback() -> None:
    text = OVERRIDE.format(port=1, fake_port=2)
    published = [line for line in text.split("\n") if "ports:" in line]
    assert published and all("127.0.0.1:" in line for line in published)
    assert "ports:" not in COMPOSE.split("nginx:")[0]  # only nginx publishes a port
