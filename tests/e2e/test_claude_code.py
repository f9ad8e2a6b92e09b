"""The real Claude Code CLI (npm @anthropic-ai/claude-code, print mode) on a pool of only Codex
(ChatGPT) accounts: its Messages requests are translated to the Codex backend and back."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import anthropic
import pytest

from quotapool.testing.fake_model import claude_limit
from quotapool.testing.fake_upstream import usage_limit
from tests.conftest import Harness, HarnessFactory
from tests.proxy.test_claude_subscriptions import pool as subscriptions_pool
from tests.proxy.test_client_keys_e2e import create

CLAUDE = Path(__file__).parent / "node_modules" / ".bin" / "claude"


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    """Three Codex accounts and nothing else; the first available serves."""
    return harness(routing={"strategy": "sequential"}, accounts_watch_interval=0.1)


def claude(
    h: Harness, home: Path, prompt: str, *args: str, key: str = "client-key", ok: bool = True
) -> dict[str, Any]:
    if not CLAUDE.exists():
        pytest.fail(f"Claude Code is missing at {CLAUDE}: run ./scripts/test, which installs it")
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": h.base,
        "ANTHROPIC_API_KEY": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "IS_SANDBOX": "1",
        "HTTPS_PROXY": "http://127.0.0.1:9",  # nothing but quotapool is reachable
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    result = subprocess.run(
        [str(CLAUDE), "-p", prompt, "--output-format", "json", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
        env=env,
    )
    assert (result.returncode == 0) is ok, result.stdout + result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_a_text_turn(h: Harness, tmp_path: Path) -> None:
    answer = claude(h, tmp_path / "home", "say hi")
    assert answer["result"] == "Hi from alpha!" and answer["is_error"] is False
    seen = h.fake.seen[-1]
    assert seen.path == "/backend-api/codex/responses" and seen.model == "gpt-5.5"
    assert not seen.body["instructions"].startswith("x-anthropic-billing-header")
    assert seen.headers["session_id"] == seen.body["prompt_cache_key"]  # Claude Code's session
    row = h.rows(1)[-1]
    assert row["model"].startswith("claude-") and row["sent_model"] == "gpt-5.5"


def test_a_tool_turn_runs_bash_and_sends_its_output_back(h: Harness, tmp_path: Path) -> None:
    h.fake.account("tok-a").tool_call = ("Bash", '{"command": "echo quotapool-tool-ok"}')
    answer = claude(h, tmp_path / "home", "run the echo", "--allowedTools", "Bash")
    assert answer["result"] == "Hi from alpha!" and answer["num_turns"] == 2
    call, result = h.fake.seen[-2].body, h.fake.seen[-1].body
    assert call["input"][-1]["type"] == "message"
    output = next(i for i in result["input"] if i["type"] == "function_call_output")
    assert "quotapool-tool-ok" in output["output"]
    assert {h.fake.seen[-2].account, h.fake.seen[-1].account} == {
        "alpha"
    }  # one session, one account


def test_a_usage_limit_on_the_first_account_is_invisible(h: Harness, tmp_path: Path) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 900))
    answer = claude(h, tmp_path / "home", "say hi")
    assert answer["result"] == "Hi from bravo!"
    assert [s.account for s in h.fake.seen[-2:]] == ["alpha", "bravo"]


def test_with_a_client_key(h: Harness, tmp_path: Path) -> None:
    key = create(h, "claude-user")
    answer = claude(h, tmp_path / "home", "say hi", key=key)
    assert answer["result"] == "Hi from alpha!"
    assert h.rows(1)[-1]["client_key"] == "claude-user"


def test_the_first_key_refuses_it_at_once_and_the_log_says_why(h: Harness, tmp_path: Path) -> None:
    """Claude Code set up as the README said before keys (`ANTHROPIC_API_KEY=unused`) once a key
    exists: one 401 (`x-should-retry: false`), no silent retries, and the refusal is a row."""
    create(h, "someone")
    started = time.monotonic()
    answer = claude(h, tmp_path / "home", "say hi", key="unused", ok=False)
    assert answer["is_error"] is True and time.monotonic() - started < 30
    refused = [r for r in h.rows(2) if r["status"] == 401]
    assert len(refused) == 1, refused
    assert "needs a client key" in refused[0]["error"] or "not valid" in refused[0]["error"]
    assert h.fake.seen == []


def test_a_tool_turn_on_a_chat_only_server(harness: HarnessFactory, tmp_path: Path) -> None:
    """Claude Code on an OpenAI-compatible key whose server has only the chat API (vLLM,
    Ollama): Messages → chat completions and back, its Bash tool included."""
    h = harness(
        credentials=[{"kind": "openai", "name": "vllm", "api_key": "sk-openai", "apis": ["chat"]}],
        routing={
            "strategy": "sequential",
            "claude_models": dict.fromkeys(("opus", "sonnet", "haiku", "default"), "qwen3-coder"),
        },
    )
    h.fake.account("sk-openai").tool_call = ("Bash", '{"command": "echo quotapool-chat-ok"}')
    answer = claude(h, tmp_path / "home", "run the echo", "--allowedTools", "Bash")
    assert answer["result"].startswith("Hi from openai-key") and answer["num_turns"] == 2
    calls = [s for s in h.fake.seen if s.path == "/v1/chat/completions"]
    assert {s.model for s in calls} == {"qwen3-coder"}
    result = calls[-1].body["messages"]
    tool = next(m for m in result if m["role"] == "tool")
    assert "quotapool-chat-ok" in tool["content"]


def test_a_pool_of_claude_subscriptions_serves_claude_code_and_hides_a_spent_window(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """Two fake Claude subscriptions: a tool turn on the first, then its 5-hour window rejected
    and the next turn on the other, Claude Code none the wiser."""
    h = subscriptions_pool(harness)
    ann = h.fake.account("sk-ant-oat01-ann")
    ann.tool_call = ("Bash", '{"command": "echo quotapool-tool-ok"}')
    answer = claude(h, tmp_path / "home", "run the echo", "--allowedTools", "Bash")
    assert answer["result"] == "Hi from ann-max!" and answer["num_turns"] == 2
    turns = [s for s in h.fake.seen if s.path == "/v1/messages"]
    assert {s.account for s in turns} == {"ann-max"}
    assert all(s.headers["authorization"] == "Bearer sk-ant-oat01-ann" for s in turns)
    assert all("oauth-2025-04-20" in s.headers["anthropic-beta"] for s in turns)
    result = next(
        b
        for m in turns[-1].body["messages"]
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    )
    assert "quotapool-tool-ok" in json.dumps(result)

    ann.fail_next(claude_limit(time.time() + 3 * 3600))
    again = claude(h, tmp_path / "home", "say hi")
    assert again["result"] == "Hi from bob-pro!" and again["is_error"] is False
    assert h.state("ann-max").status.value == "quota_exceeded"


def test_the_anthropic_sdk_is_refused_by_a_pool_of_subscriptions(
    harness: HarnessFactory,
) -> None:
    h = subscriptions_pool(harness)
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        h.anthropic().messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert "serves Claude Code only" in str(refused.value)
