"""The real Gemini CLI (npm @google/gemini-cli, installed by scripts/install) against
quotapool, with a Gemini API key as its auth and quotapool as its base URL
(`GOOGLE_GEMINI_BASE_URL`). Every request it makes outside loopback goes to a dead proxy on
127.0.0.1:9, so the test never leaves the machine."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from quotapool.testing.fake_upstream import FakeUpstream, gemini_limited
from tests.conftest import Harness, HarnessFactory, codex_credentials
from tests.proxy.test_client_keys_e2e import create

GEMINI = Path(__file__).parent / "node_modules" / ".bin" / "gemini"
SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
}


def gemini(
    h: Harness, home: Path, prompt: str, key: str = "client-key"
) -> subprocess.CompletedProcess[str]:
    if not GEMINI.exists():
        pytest.fail(
            f"the Gemini CLI is missing at {GEMINI}: run ./scripts/install, which installs it"
        )
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GEMINI_API_KEY": key,
        "GOOGLE_GEMINI_BASE_URL": h.base,
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "GEMINI_CLI_NO_RELAUNCH": "1",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    return subprocess.run(
        [str(GEMINI), "--yolo", "-p", prompt],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
        env=env,
    )


def test_a_tool_turn_on_chatgpt_accounts(harness: HarnessFactory, tmp_path: Path) -> None:
    """Its shell tool runs and its output goes back; its router's structured request is
    answered too; its API key is a client key here, never sent on."""
    h = harness()
    key = create(h, "gemini-cli")
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).tool_call = (
            "run_shell_command",
            json.dumps({"command": "echo qp-gemini-tool"}),
        )
    result = gemini(h, tmp_path / "home", "run the tool", key)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("Hi from ")
    turns = [s for s in h.fake.seen if s.path == "/backend-api/codex/responses"]
    outputs = [
        i for s in turns for i in s.body.get("input", []) if i.get("type") == "function_call_output"
    ]
    assert outputs and "qp-gemini-tool" in json.dumps(outputs)
    assert all(key not in json.dumps(s.headers) for s in h.fake.seen)
    rows = [r for r in h.rows(len(turns) + 1, timeout=5) if r["route"] == "gemini"]
    assert rows and {r["client_key"] for r in rows} == {"gemini-cli"}
    assert all(r["sent_model"] and r["sent_model"].startswith("gpt-") for r in rows)


def test_a_gemini_key_first_and_a_chatgpt_account_when_it_is_limited(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """A Gemini key serves the CLI's models itself, before any stand-in; at its limit (a 429
    with RetryInfo) the CLI's requests go to a ChatGPT account's stand-in, unseen."""

    def known(fake: FakeUpstream, _upstream: str) -> None:
        fake.add("gk-1", name="gemini-key")

    gemini_key = {"kind": "gemini", "name": "gem", "api_key": "gk-1"}
    h = harness(credentials=[*codex_credentials(), gemini_key], before_start=known)
    first = gemini(h, tmp_path / "one", "say hi")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Hi from gemini-key!" in first.stdout
    assert {s.account for s in h.fake.seen} == {"gemini-key"}
    h.fake.account("gk-1").always = gemini_limited(600)
    second = gemini(h, tmp_path / "two", "say hi")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Hi from " in second.stdout and "gemini-key" not in second.stdout
    assert h.state("gem").status.value == "rate_limited"
