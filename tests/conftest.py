"""Shared harness: the fake upstream and quotapool, both real servers on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from quotapool.compose import Quotapool, build
from quotapool.config import Settings
from quotapool.server import run_in_thread as serve_pool
from quotapool.store.request_log import recent
from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread

CODEX = [("tok-a", "alpha", "acct-a"), ("tok-b", "bravo", "acct-b"), ("tok-c", "charlie", "acct-c")]


@dataclass
class Harness:
    fake: FakeUpstream
    upstream: str
    base: str
    qp: Quotapool
    clients: list[Any] = field(default_factory=list)

    def openai(self, **kwargs: Any) -> openai.OpenAI:
        client = openai.OpenAI(
            base_url=f"{self.base}/v1", api_key="client-key", max_retries=0, **kwargs
        )
        self.clients.append(client)
        return client

    def anthropic(self) -> anthropic.Anthropic:
        client = anthropic.Anthropic(base_url=self.base, api_key="client-key", max_retries=0)
        self.clients.append(client)
        return client

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30)

    def rows(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The last `count` request-log rows, waiting for the batched writer: `count` must be
        every request logged so far (a smaller count may return rows before the newest lands)."""
        assert self.qp.request_log is not None
        deadline = time.monotonic() + timeout
        while True:
            rows = recent(self.qp.request_log.engine, 1000)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows[-count:]
            time.sleep(0.05)

    def state(self, name: str) -> Any:
        return self.qp.pool.snapshot().state(name)


def codex_credentials(accounts: list[tuple[str, str, str]] = CODEX) -> list[dict[str, Any]]:
    return [{"kind": "codex", "name": n, "api_key": t, "account_id": a} for t, n, a in accounts]


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[HarnessFactory]:
    """`harness(credentials=[...], **settings)`; by default three Codex accounts."""
    stack: list[Any] = []
    made: list[Harness] = []

    def make(
        credentials: list[dict[str, Any]] | None = None,
        before_start: Callable[[FakeUpstream, str], None] | None = None,
        upstream_of: Harness | None = None,
        **settings: Any,
    ) -> Harness:
        """`upstream_of`: another harness whose fake upstream this one shares (replicas)."""
        if upstream_of is not None:
            fake, upstream = upstream_of.fake, upstream_of.upstream
        else:
            fake = FakeUpstream()
            for token, name, account in CODEX:
                fake.add(token, name=name, account_id=account)
            fake.add("sk-openai", name="openai-key")
            fake.add("sk-ant", name="anthropic-key")
            upstream_cm = run_in_thread(fake)
            upstream = upstream_cm.__enter__()
            stack.append(upstream_cm)
        if before_start is not None:
            before_start(fake, upstream)
        creds = codex_credentials() if credentials is None else credentials
        for cred in creds:
            if cred["kind"] != "codex":
                cred.setdefault("base_url", upstream + ("/v1" if cred["kind"] == "openai" else ""))
        settings.setdefault("routing", {"strategy": "round_robin"})
        settings.setdefault("usage_poll_interval", 0)  # tests that want the poller turn it on
        settings.setdefault("codex_models_refresh", 0)  # so do those that want model lists
        settings.setdefault("auth_base_url", upstream)
        settings.setdefault("claude_api_base_url", upstream)
        settings.setdefault("claude_auth_base_url", upstream)
        config = Settings(
            home=tmp_path,
            port=0,
            codex_base_url=f"{upstream}/backend-api",
            credentials=creds,  # type: ignore[arg-type]
            **settings,
        )
        qp = build(config)
        proxy_cm = serve_pool(qp)
        base = proxy_cm.__enter__()
        stack.append(proxy_cm)
        made.append(Harness(fake, upstream, base, qp))
        return made[-1]

    yield make
    for each in made:
        for client in each.clients:
            client.close()
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    """Three Codex accounts, an OpenAI key (gpt-4.1) and an Anthropic key."""
    creds = codex_credentials() + [
        {"kind": "openai", "name": "openai-key", "api_key": "sk-openai", "models": ["gpt-4.1"]},
        {"kind": "anthropic", "name": "anthropic-key", "api_key": "sk-ant"},
    ]
    for cred in creds[:3]:
        cred["models"] = ["gpt-5.5"]
    return harness(credentials=creds)


_SERVERS = ("harness", "h")
"""Fixtures that start real servers on loopback."""
_E2E_PLACES = (
    "tests/e2e/",
    "tests/admin/",
    "tests/store/",
    "tests/faults/",
    "tests/net/",
    "tests/docker/",
)
_E2E_FILES = (
    "tests/test_readme.py",
    "tests/test_outage.py",
    "tests/cli/test_terminal.py",
    "tests/cli/test_start_errors.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`e2e`: a test that starts real servers, processes, clients or a browser. The rest —
    the pure core and what runs in process — is the fast tier: `pytest -m "not e2e"`."""
    root = Path(__file__).parent.parent
    for item in items:
        where = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        uses = getattr(item, "fixturenames", ())
        if (
            where.startswith(_E2E_PLACES)
            or where in _E2E_FILES
            or where.endswith("_e2e.py")
            or any(name in uses for name in _SERVERS)
        ):
            item.add_marker(pytest.mark.e2e)
