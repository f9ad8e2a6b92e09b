"""The README's Docker commands in a real engine: the image built and run as the README says
(its port published on loopback only), reached from outside the container the way a client on
another machine reaches it (through Docker's port: not a loopback client to quotapool)."""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from quotapool.proxy.admission import REMOTE_REFUSED
from quotapool.testing.fake_upstream import FakeUpstream
from tests.docker.engine import ROOT, docker
from tests.faults.process import free_port

README_RUN = (
    "docker build -t quotapool . && "
    "docker run -d --name quotapool -p 8410:8410 -v quotapool:/data quotapool"
)
README_KEY = "docker exec quotapool quotapool keys create me"
README_IMPORT = "docker exec -i quotapool quotapool accounts import - < ~/.codex/auth.json"
BODY = {"model": "gpt-5.5", "input": "hi"}


@dataclass
class Running:
    name: str
    base: str
    run: list[str]
    """The README's `docker run`, as run here (to start it again on the same volume)."""

    def exec(self, *command: str) -> str:
        return docker("exec", self.name, *command).stdout


def readme_commands(tag: str, name: str, port: int, volume: str) -> tuple[list[str], list[str]]:
    """The README's build and run commands with this run's names, the port on loopback."""
    assert README_RUN in (ROOT / "README.md").read_text(), "the README's Docker line changed"
    build, run = (shlex.split(part) for part in README_RUN.split(" && "))
    swaps = {
        ("-t", "quotapool"): ("-t", tag),
        ("--name", "quotapool"): ("--name", name),
        ("-p", "8410:8410"): ("-p", f"127.0.0.1:{port}:8410"),
        ("-v", "quotapool:/data"): ("-v", f"{volume}:/data"),
    }
    for command in (build, run):
        for i in range(len(command) - 1):
            command[i : i + 2] = swaps.get((command[i], command[i + 1]), command[i : i + 2])
    assert build[-1] == "." and run[-1] == "quotapool"
    build[-1], run[-1] = str(ROOT), tag
    return build[1:], run[1:]


@pytest.fixture(scope="module")
def image(base_images: dict[str, str]) -> Iterator[tuple[str, list[str], str]]:
    """The image built by the README's command; (its tag, the README's run command, the
    volume)."""
    suffix = uuid.uuid4().hex[:8]
    tag, volume = f"quotapool-test:{suffix}", f"quotapool-test-{suffix}"
    build, run = readme_commands(tag, f"quotapool-test-{suffix}", free_port(), volume)
    docker(*build, timeout=900)
    try:
        yield tag, run, volume
    finally:
        docker("rmi", tag, check=False)


@pytest.fixture
def container(image: tuple[str, list[str], str]) -> Iterator[Running]:
    _, run, volume = image
    name = run[run.index("--name") + 1]
    port = run[run.index("-p") + 1].split(":")[1]
    running = Running(name, f"http://127.0.0.1:{port}", run)
    try:
        start(running)
        yield running
    finally:
        docker("rm", "-f", name, check=False)
        docker("volume", "rm", volume, check=False)


def start(running: Running) -> None:
    docker(*running.run)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{running.base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            logs = docker("logs", running.name, check=False)
            raise AssertionError(f"not serving after 30 s:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.2)


def create_key(running: Running, name: str = "me") -> str:
    """The README's `docker exec … keys create me` (the key alone on stdout's last line)."""
    command = shlex.split(README_KEY)
    assert README_KEY in (ROOT / "README.md").read_text()
    assert command[2] == "quotapool" and command[-1] == "me"
    key = docker("exec", running.name, *command[3:-1], name).stdout.strip().splitlines()[-1]
    assert key.startswith("qp-")
    return key


def test_a_client_outside_the_container_is_served_with_the_key_the_readme_creates(
    container: Running,
) -> None:
    with httpx.Client(base_url=container.base, timeout=10) as http:
        bare = http.post("/v1/responses", json=BODY)
        assert bare.status_code == 403  # Docker's port: not a loopback client
        assert bare.json()["error"]["message"] == REMOTE_REFUSED
        assert "docker exec quotapool quotapool keys create" in REMOTE_REFUSED
        key = create_key(container)
        keyed = http.post("/v1/responses", json=BODY, headers={"authorization": f"Bearer {key}"})
        assert keyed.status_code == 503, keyed.text  # served at once: an empty pool says so
        assert "accounts" in keyed.json()["error"]["message"]
        wrong = http.post("/v1/responses", json=BODY, headers={"authorization": "Bearer qp-no"})
        assert wrong.status_code == 401
    logs = docker("logs", container.name)
    assert key not in logs.stdout + logs.stderr


def test_a_login_on_the_host_is_imported_as_the_readme_says(container: Running) -> None:
    assert README_IMPORT in (ROOT / "README.md").read_text()
    command = shlex.split(README_IMPORT.split(" < ")[0])
    assert command[:3] == ["docker", "exec", "-i"] and command[3] == "quotapool"
    fake = FakeUpstream()
    login = json.dumps(fake.auth_json(fake.add("t", name="sam", account_id="acct-sam")))
    docker("exec", "-i", container.name, *command[4:], input=login)
    listed = container.exec("quotapool", "accounts", "list", "--json")
    assert [json.loads(row)["name"] for row in listed.splitlines()] == ["sam@example.com"]


def test_the_dashboard_opens_from_outside_with_the_admin_token(container: Running) -> None:
    create_key(container)  # (until a key exists, only loopback clients are served)
    token = container.exec("quotapool", "admin", "token").strip().splitlines()[-1]
    with httpx.Client(base_url=container.base, timeout=10) as browser:
        assert 'name="token"' in browser.get("/quotapool/").text  # the sign-in page
        signed = browser.post("/quotapool/login", data={"token": token})
        assert signed.status_code == 303, signed.text
        page = browser.get("/quotapool/")
        assert page.status_code == 200 and 'name="token"' not in page.text
        assert browser.get("/quotapool/api/credentials").json()["credentials"] == []


def test_it_runs_unprivileged_and_keeps_its_home_in_the_volume(container: Running) -> None:
    assert container.exec("id", "-u").strip() == "10001"
    listing = container.exec("stat", "-c", "%a %U %n", "/data", "/data/secret.key")
    assert listing.split("\n")[:2] == ["700 quotapool /data", "600 quotapool /data/secret.key"]
    key = create_key(container)
    started = time.monotonic()
    docker("stop", container.name, timeout=60)  # SIGTERM: it drains and exits by itself
    assert time.monotonic() - started < 15
    state = json.loads(docker("inspect", "-f", "{{json .State}}", container.name).stdout)
    assert state["ExitCode"] == 0, state
    docker("rm", container.name)
    start(container)  # a new container on the same volume: the same database and keys
    answer = httpx.post(
        f"{container.base}/v1/responses", json=BODY, headers={"x-api-key": key}, timeout=10
    )
    assert answer.status_code == 503, answer.text


def test_its_healthcheck_reports_healthy(container: Running) -> None:
    """The image's HEALTHCHECK (first run 30 s after the start, then every 30 s)."""
    deadline = time.monotonic() + 60
    while (status := _health(container)) != "healthy":
        assert status == "starting" and time.monotonic() < deadline, status
        time.sleep(1)


def _health(running: Running) -> str:
    found = docker("inspect", "-f", "{{.State.Health.Status}}", running.name)
    return found.stdout.strip()


def test_the_readme_commands_are_the_ones_run() -> None:
    build, run = readme_commands("t:1", "n", 1234, "v")
    assert build == ["build", "-t", "t:1", str(ROOT)]
    assert run == ["run", "-d", "--name", "n", "-p", "127.0.0.1:1234:8410", "-v", "v:/data", "t:1"]
