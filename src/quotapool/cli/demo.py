"""`quotapool demo`: fake accounts behind the proxy, and a short tour of routing and failover."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from quotapool.compose import build
from quotapool.config import Settings
from quotapool.server import run_in_thread as serve_pool
from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread, usage_limit

ACCOUNTS = [
    ("tok-alice", "alice", "acct-alice"),
    ("tok-bob", "bob", "acct-bob"),
    ("tok-carol", "carol", "acct-carol"),
]


def run_demo(console: Console, *, port: int, tour: bool, duration: float | None) -> None:
    fake = FakeUpstream()
    for token, name, account_id in ACCOUNTS:
        fake.add(token, name=name, account_id=account_id)
    fake.add("sk-fake-openai", name="openai-key")
    home = Path(tempfile.mkdtemp(prefix="quotapool-demo-"))
    with run_in_thread(fake) as upstream:
        credentials: list[dict[str, Any]] = [
            {"kind": "codex", "name": name, "api_key": token, "account_id": account_id}
            for token, name, account_id in ACCOUNTS
        ]
        credentials.append(
            {
                "kind": "openai",
                "name": "openai-key",
                "base_url": f"{upstream}/v1",
                "api_key": "sk-fake-openai",
                "models": ["gpt-4.1"],
            }
        )
        settings = Settings.exactly(
            home=home,
            port=port,
            codex_base_url=f"{upstream}/backend-api",
            credentials=credentials,
            routing={"strategy": "round_robin"},
            log_level="warning",
        )
        with serve_pool(build(settings)) as base:
            console.print(
                f"[bold]quotapool demo[/bold] on {base} (fake upstream {upstream}, data in {home})"
            )
            console.print("Accounts: alice, bob, carol (Codex) and openai-key (serves gpt-4.1).\n")
            console.print("Point a client at it (each command pastes as it is):")
            for line in commands(base, home):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
            console.print()
            if tour:
                _tour(console, base, fake)
            _wait(console, duration)


def commands(base: str, home: Path) -> list[str]:
    """Copy-paste commands, each line within 80 columns where the paths allow (continued with
    a backslash, never wrapped by the terminal in the middle of a word)."""
    quotapool = _command()
    body = '{"model":"gpt-5.5","messages":[{"role":"user","content":"hi"}]}'
    return [
        f"  curl {base}/v1/chat/completions \\",
        "    -H 'content-type: application/json' \\",
        f"    -d '{body}'",
        "",
        f"  OPENAI_BASE_URL={base}/v1 OPENAI_API_KEY=unused \\",
        '    python -c "import openai; print(openai.OpenAI().responses.create(',
        "      model='gpt-5.5', input='hi').output_text)\"",
        "",
        "  # what happened, and why:",
        f"  QUOTAPOOL_HOME={home} \\",
        f"    {quotapool} requests",
    ]


def _command() -> str:
    """How a shell here runs quotapool: by name when it is on the PATH."""
    if shutil.which("quotapool"):
        return "quotapool"
    script = Path(sys.argv[0])
    return str(script.resolve()) if script.name == "quotapool" else f"{sys.executable} -m quotapool"


def _tour(console: Console, base: str, fake: FakeUpstream) -> None:
    table = Table(title="tour: 6 requests; bob runs out of quota during the 2nd")
    for column in ("#", "model", "upstream tried", "answered by", "answer"):
        table.add_column(column)
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(1, 7):
            if i == 2:
                fake.account("tok-bob").fail_next(usage_limit(fake.clock.now() + 600))
            model = "gpt-4.1" if i == 6 else "gpt-5.5"
            seen = len(fake.seen)
            response = client.post("/v1/responses", json={"model": model, "input": f"question {i}"})
            tried = " → ".join(s.account or "-" for s in fake.seen[seen:])
            body = response.json()
            answer = (
                body["output"][0]["content"][0]["text"]
                if response.status_code == 200
                else body["error"]["message"]
            )
            route = response.headers.get("x-quotapool-route", "").split("credential=")[-1]
            table.add_row(str(i), model, tried, route, answer)
    console.print(table)
    console.print(
        "Request 2 hit bob's usage limit (429); quotapool failed over to carol before the client saw "
        "a byte, and skips bob until his reset.\n"
    )


def _wait(console: Console, duration: float | None) -> None:
    console.print(
        "Serving; Ctrl-C to stop." if duration is None else f"Serving for {duration:g} s."
    )
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait(duration)
