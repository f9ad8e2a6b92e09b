"""The README's "First ten minutes", run as written: one bash session, a fake upstream in place
of chatgpt.com and api.openai.com (by the settings and the `--base-url` the README shows),
a free port in place of 8410, and a wait for `/health` after the server starts in the
background (what a person does by reading its "listening" line)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread
from tests.faults.process import free_port

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "auth_sample.json"
NODE_BIN = ROOT / "tests" / "e2e" / "node_modules" / ".bin"


def first_ten_minutes() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## First ten minutes", 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```sh\n(.*?)```", section, re.S))


def test_the_first_ten_minutes_work_as_written(tmp_path: Path) -> None:
    commands = first_ten_minutes()
    assert "quotapool serve &" in commands and "keys create" in commands
    port, demo_port = free_port(), free_port()
    login = json.loads(FIXTURE.read_text())
    (tmp_path / ".codex").mkdir()
    shutil.copy(FIXTURE, tmp_path / ".codex" / "auth.json")
    fake = FakeUpstream()
    fake.add(login["tokens"]["access_token"], name="my-codex", account_id="acct-probe-123")
    fake.add("sk-openai", name="work-key")
    with run_in_thread(fake) as upstream:
        script = (
            commands.replace("127.0.0.1:8410", f"127.0.0.1:{port}")
            .replace("https://api.openai.com/v1", f"{upstream}/v1")
            .replace("quotapool demo ", f"quotapool demo --port {demo_port} --duration 0 ")
            .replace(
                "quotapool serve &",
                "quotapool serve &\nuntil curl -sf "
                f"http://127.0.0.1:{port}/health >/dev/null; do sleep 0.1; done;",
            )
        )
        env = {
            "HOME": str(tmp_path),
            "PATH": f"{NODE_BIN}:{os.environ['PATH']}",
            "COLUMNS": "80",
            "OPENAI_API_KEY": "sk-openai",
            "QUOTAPOOL_PORT": str(port),
            "QUOTAPOOL_CODEX_BASE_URL": f"{upstream}/backend-api",
            "QUOTAPOOL_AUTH_BASE_URL": upstream,
            "QUOTAPOOL_USAGE_POLL_INTERVAL": "0",
            # Claude Code reaches nothing but quotapool, and asks nothing of its own servers.
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "IS_SANDBOX": "1",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        assert Path(sys.executable).parent == ROOT / ".venv" / "bin", "run from the repo's venv"
        session = "set -eo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + script
        result = subprocess.run(
            ["bash", "-c", session],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "Traceback" not in said and "readable by other users" not in said
    assert "bob failed" in said or "failed over to carol" in said  # the demo's tour
    assert "1 account(s) saved" in said and "added openai key work" in said
    hi = [line for line in result.stdout.splitlines() if line.startswith("Hi from ")]
    assert len(hi) >= 2, said  # the openai SDK's answer and Claude Code's
    assert "gpt-5.5 → " in result.stdout  # `quotapool requests`
    assert re.search(r"^qpa-\S+$|^\S{30,}$", result.stdout.splitlines()[-1]), said
