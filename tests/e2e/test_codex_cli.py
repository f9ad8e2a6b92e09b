"""The real Codex CLI (npm @openai/codex, installed by scripts/test) against quotapool.

Every request the CLI makes outside loopback is sent to a dead proxy on 127.0.0.1:9, so the
test never leaves the machine.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from quotapool.testing.fake_upstream import server_error, usage_limit
from tests.conftest import Harness, HarnessFactory, codex_credentials
from tests.net.proxies import SOCKS_PROXY_OUT, socks_proxy
from tests.proxy.test_client_keys_e2e import create

CODEX = Path(__file__).parent / "node_modules" / ".bin" / "codex"

API_KEY_MODE = """
model = "gpt-5.5"
model_provider = "qp"
[features]
apps = false
[model_providers.qp]
name = "qp"
base_url = "{base}/v1"
wire_api = "responses"
env_key = "QP_KEY"
{websockets}
"""
CHATGPT_MODE = """
model = "gpt-5.5"
model_provider = "pool"
cli_auth_credentials_store = "file"
[features]
apps = false
[model_providers.pool]
name = "openai"
base_url = "{base}/backend-api/codex"
wire_api = "responses"
requires_openai_auth = true
{websockets}
"""


def codex(
    h: Harness,
    home: Path,
    config: str,
    prompt: str = "say hi",
    *,
    websockets: bool = False,
    key: str = "client-key",
) -> subprocess.CompletedProcess[str]:
    if not CODEX.exists():
        pytest.fail(f"the Codex CLI is missing at {CODEX}: run ./scripts/test, which installs it")
    home.mkdir(parents=True, exist_ok=True)
    flag = "supports_websockets = true" if websockets else ""
    (home / "config.toml").write_text(config.format(base=h.base, websockets=flag))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(home),
        "QP_KEY": key,
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    return subprocess.run(
        [str(CODEX), "exec", "--skip-git-repo-check", prompt],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
        env=env,
    )


def chatgpt_login(h: Harness, home: Path) -> None:
    """The CLI's own auth.json (its token is replaced by the pool's upstream)."""
    account = h.fake.add("client-token", name="client", account_id="acct-client")
    data = h.fake.auth_json(account)
    data["last_refresh"] = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
    home.mkdir(parents=True, exist_ok=True)
    (home / "auth.json").write_text(json.dumps(data))


@pytest.mark.parametrize("websockets", [False, True], ids=["http", "websocket"])
def test_api_key_mode(h: Harness, tmp_path: Path, websockets: bool) -> None:
    result = codex(h, tmp_path / "codex", API_KEY_MODE, websockets=websockets)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hi from alpha!"
    seen = h.fake.seen[-1]
    assert (
        seen.path == "/backend-api/codex/responses"
        and seen.headers["authorization"] != "Bearer client-key"
    )
    assert seen.body["prompt_cache_key"] and seen.headers["session-id"]


@pytest.mark.parametrize("websockets", [False, True], ids=["http", "websocket"])
def test_api_key_mode_with_a_client_key(
    harness: HarnessFactory, tmp_path: Path, websockets: bool
) -> None:
    h = harness(accounts_watch_interval=0.1)
    key = create(h, "codex-user")
    result = codex(h, tmp_path / "codex", API_KEY_MODE, websockets=websockets, key=key)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hi from alpha!"
    assert h.rows(1)[-1]["client_key"] == "codex-user"
    refused = codex(h, tmp_path / "other", API_KEY_MODE, websockets=websockets, key="qp-wrong")
    assert refused.returncode != 0
    assert "client key is not valid" in refused.stderr + refused.stdout


def test_chatgpt_mode_over_http(h: Harness, tmp_path: Path) -> None:
    home = tmp_path / "codex"
    chatgpt_login(h, home)
    result = codex(h, home, CHATGPT_MODE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("Hi from ")
    assert h.fake.seen[-1].headers["chatgpt-account-id"] in {"acct-a", "acct-b", "acct-c"}


def test_chatgpt_mode_over_websocket(h: Harness, tmp_path: Path) -> None:
    home = tmp_path / "codex"
    chatgpt_login(h, home)
    result = codex(h, home, CHATGPT_MODE, websockets=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("Hi from ")
    frames = [s for s in h.fake.seen if s.body.get("type") == "response.create"]
    assert frames and len({s.account for s in frames}) == 1  # every frame on one account


@pytest.mark.parametrize("websockets", [False, True], ids=["http", "websocket"])
def test_chatgpt_mode_with_a_client_key_as_its_access_token(
    harness: HarnessFactory, tmp_path: Path, websockets: bool
) -> None:
    """ChatGPT mode sends auth.json's access token as the bearer: a client key goes there."""
    h = harness(accounts_watch_interval=0.1)
    key = create(h, "chatgpt-user")
    home = tmp_path / "codex"
    chatgpt_login(h, home)
    auth = json.loads((home / "auth.json").read_text())
    auth["tokens"]["access_token"] = key
    (home / "auth.json").write_text(json.dumps(auth))
    result = codex(h, home, CHATGPT_MODE, websockets=websockets)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("Hi from ")
    assert h.rows(1)[-1]["client_key"] == "chatgpt-user"
    assert h.fake.seen[-1].headers["authorization"] != f"Bearer {key}"  # never forwarded


def test_no_upstream_websocket_sends_the_cli_to_http(h: Harness, tmp_path: Path) -> None:
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).ws_refuse = 426
    home = tmp_path / "codex"
    chatgpt_login(h, home)
    result = codex(h, home, CHATGPT_MODE, websockets=True)
    assert result.returncode == 0, result.stderr
    assert (
        h.fake.seen[-1].path == "/backend-api/codex/responses"
        and h.fake.seen[-1].body.get("stream") is True
    )


def test_a_429_on_the_first_account_is_invisible(h: Harness, tmp_path: Path) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 900))
    result = codex(h, tmp_path / "codex", API_KEY_MODE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hi from bravo!"
    assert [s.account for s in h.fake.seen[-2:]] == ["alpha", "bravo"]


def test_every_account_exhausted_shows_the_usage_limit(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    h = harness()
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).always = usage_limit(time.time() + 3 * 3600)
    home = tmp_path / "codex"
    chatgpt_login(h, home)
    result = codex(h, home, CHATGPT_MODE)
    assert result.returncode == 1
    output = (result.stdout + result.stderr).lower()
    assert "usage limit" in output, output[-2000:]
    assert "try again" in output, output[-2000:]  # with the reset time the pool announced


def test_a_tool_turn_stays_on_one_account_over_websocket(h: Harness, tmp_path: Path) -> None:
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).tool_call = (
            "exec_command",
            json.dumps({"cmd": "echo quotapool-tool"}),
        )
    home = tmp_path / "codex"
    chatgpt_login(h, home)
    result = codex(h, home, CHATGPT_MODE, "run the tool", websockets=True)
    assert result.returncode == 0, result.stderr
    frames = [s for s in h.fake.seen if s.body.get("type") == "response.create"]
    assert len({s.account for s in frames}) == 1  # prewarm, turn and follow-up: one account
    follow_ups = [
        f
        for f in frames
        if any(
            i.get("type") == "function_call_output"
            for i in f.body.get("input", [])
            if isinstance(i, dict)
        )
    ]
    assert follow_ups and follow_ups[-1].body.get("previous_response_id")
    assert result.stdout.strip().startswith("Hi from ")


def test_a_websocket_session_leaves_through_its_accounts_socks_proxy(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """A tool turn over the WebSocket transport, the pool's accounts behind a SOCKS5 proxy:
    the upstream sees every connection come from the proxy."""
    with socks_proxy() as via_socks:
        credentials = [{**c, "proxy_url": via_socks} for c in codex_credentials()]
        h = harness(credentials=credentials)
        for token in ("tok-a", "tok-b", "tok-c"):
            h.fake.account(token).tool_call = ("exec_command", json.dumps({"cmd": "echo hi"}))
        home = tmp_path / "codex"
        chatgpt_login(h, home)
        result = codex(h, home, CHATGPT_MODE, "run the tool", websockets=True)
    assert result.returncode == 0, result.stderr
    frames = [s for s in h.fake.seen if s.body.get("type") == "response.create"]
    assert len(frames) >= 2 and len({s.account for s in frames}) == 1
    upgrades = [p for p in h.fake.peers if p.path == "/backend-api/codex/responses"]
    assert upgrades and {p.address for p in h.fake.peers if p.account} == {SOCKS_PROXY_OUT}


def test_an_outage_is_retried_by_the_cli_not_shown_as_a_usage_limit(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """Every account answers 500 once: the CLI gets a 503, retries it, and is served."""
    h = harness()
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).fail_next(server_error(500))
    home = tmp_path / "codex"
    chatgpt_login(h, home)
    result = codex(h, home, CHATGPT_MODE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("Hi from ")
    statuses = [r["status"] for r in h.rows(2, timeout=5) if r["path"].endswith("/responses")]
    assert 503 in statuses and statuses[-1] == 200


def test_a_lasting_outage_is_not_reported_as_a_usage_limit(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    h = harness()
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).always = server_error(500)
    home = tmp_path / "codex"
    chatgpt_login(h, home)
    few_retries = CHATGPT_MODE + "request_max_retries = 1\nstream_max_retries = 1\n"
    result = codex(h, home, few_retries)
    assert result.returncode == 1
    output = (result.stdout + result.stderr).lower()
    assert "usage limit" not in output, output[-2000:]
    assert "upstream" in output or "503" in output or "unavailable" in output, output[-2000:]


@pytest.mark.parametrize("kind", ["anthropic", "chat"])
def test_a_tool_turn_on_keys_without_the_responses_api(
    harness: HarnessFactory, tmp_path: Path, kind: str
) -> None:
    """The Codex CLI on an Anthropic key, or on an OpenAI-compatible server with only the chat
    API: its Responses requests are translated, its shell tool runs, its output goes back."""
    credential: dict[str, Any]
    if kind == "anthropic":
        credential = {"kind": "anthropic", "name": "ant", "api_key": "sk-ant"}
        path, token = "/v1/messages", "sk-ant"
    else:
        credential = {"kind": "openai", "name": "vllm", "api_key": "sk-openai", "apis": ["chat"]}
        path, token = "/v1/chat/completions", "sk-openai"
    h = harness(credentials=[credential])
    h.fake.account(token).tool_call = ("exec_command", json.dumps({"cmd": "echo qp-tool-ok"}))
    config = API_KEY_MODE.replace('model = "gpt-5.5"', 'model = "claude-sonnet-5-5"')
    result = codex(h, tmp_path / "codex", config, "run the tool")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("Hi from ")
    calls = [s for s in h.fake.seen if s.path == path]
    assert len(calls) >= 2
    messages = calls[-1].body["messages"]
    if kind == "anthropic":
        results = [b for m in messages for b in m["content"] if b["type"] == "tool_result"]
    else:
        results = [m for m in messages if m["role"] == "tool"]
    assert results and "qp-tool-ok" in json.dumps(results[-1]["content"])  # the shell's output
    assert all(row["status"] == 200 for row in h.rows(len(calls)))


def test_an_exhausted_pool_falls_back_to_an_anthropic_key_for_a_tool_turn(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """Every ChatGPT account at its usage limit, the profile's fallback names a Claude model:
    the CLI's socket is sent to HTTP, its tool turn completes on the Anthropic key."""
    ant = {"kind": "anthropic", "name": "ant", "api_key": "sk-ant"}
    fallback = {"gpt-5.5": ["claude-sonnet-4-5"]}
    h = harness(
        credentials=[*codex_credentials(), ant],
        routing={"strategy": "round_robin", "fallback": fallback},
    )
    for token in ("tok-a", "tok-b", "tok-c"):
        h.fake.account(token).always = usage_limit(time.time() + 3 * 3600)
    h.fake.account("sk-ant").tool_call = ("exec_command", json.dumps({"cmd": "echo qp-fell-back"}))
    home = tmp_path / "codex"
    chatgpt_login(h, home)
    result = codex(h, home, CHATGPT_MODE, "run the tool", websockets=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("Hi from ")
    calls = [s for s in h.fake.seen if s.path == "/v1/messages"]
    assert len(calls) >= 2 and {c.body["model"] for c in calls} == {"claude-sonnet-4-5"}
    results = [
        b for m in calls[-1].body["messages"] for b in m["content"] if b["type"] == "tool_result"
    ]
    assert results and "qp-fell-back" in json.dumps(results)
    # Three sockets (each turn refused, then closed), the 426, and the HTTP requests.
    served = [r for r in h.rows(7 + len(calls), timeout=5) if r["status"] == 200]
    assert served and {r["fallback"] for r in served} == {"claude-sonnet-4-5"}
