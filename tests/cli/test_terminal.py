"""Each command's output designed for an 80×24 terminal, checked in a real one (tmux): nothing
the terminal has to wrap but prose, copy-paste commands that run as pasted, the failover
explanation visible."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from quotapool.store.accounts import AccountStore
from tests.cli.terminal import WIDTH, run, terminal


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unwrapped(lines: list[str]) -> None:
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert too_wide == [], "\n".join(too_wide)


def test_the_demo_fits_and_its_commands_run_as_pasted(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "COLUMNS": str(WIDTH)}
    port = free_port()
    with terminal(f"quotapool demo --port {port} --duration 60", env) as pane:
        lines = pane.wait_for("Serving for")
        unwrapped([line for line in lines if "WARNING" not in line])  # (log lines: prose)
        start = next(i for i, line in enumerate(lines) if line.startswith("  curl "))
        blocks = "\n".join(lines[start:]).split("\n\n")[:3]
        curl, python, requests = (block.strip() for block in blocks)
        assert "Traceback" not in "\n".join(lines)
        pasted = subprocess.run(
            ["bash", "-c", curl], capture_output=True, text=True, timeout=30
        )  # exactly what a person copies from the screen
        assert '"Hi from ' in pasted.stdout, pasted.stdout + pasted.stderr
        venv = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
        answered = subprocess.run(
            ["bash", "-c", python], capture_output=True, text=True, timeout=60, env=venv
        )
        assert answered.stdout.startswith("Hi from "), answered.stdout + answered.stderr
        listed = subprocess.run(
            ["bash", "-c", requests.splitlines()[-2] + "\n" + requests.splitlines()[-1]],
            capture_output=True,
            text=True,
            timeout=60,
            env={**venv, "COLUMNS": "80"},
        )
        assert "bob failed (429" in listed.stdout, listed.stdout + listed.stderr


def test_requests_show_why_at_80_columns(tmp_path: Path) -> None:
    env = {"QUOTAPOOL_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "quotapool", "demo", "--port", str(port), "--duration", "30"],
        env={**env, "PATH": os.environ["PATH"], "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        home = ""
        for line in demo.stdout:
            if "data in " in line:
                home = line.split("data in ", 1)[1].rstrip(")\n ")
            if line.startswith("Serving for"):
                break
        env["QUOTAPOOL_HOME"] = home
        deadline = time.monotonic() + 10
        while len(short := run("quotapool requests", env)) < 12:  # (rows written in batches)
            assert time.monotonic() < deadline, short
        unwrapped(short)
        assert len(short) == 12  # six requests, two lines each
        failover = short[short.index(next(s for s in short if "(2 tries)" in s)) + 1]
        assert failover.startswith("  bob failed (429 usage_limit_reached), failed over;")
        wide = run("quotapool requests --wide", env)
        unwrapped(wide)
        assert len(wide) < 60 and any("not eligible: bob: already tried" in w for w in wide)
        check = run("quotapool config check", env)
        assert len(check) <= 24 and check[-1].startswith("configuration OK")
    finally:
        demo.terminate()
        demo.wait(30)
        if demo.stdout is not None:
            demo.stdout.close()


def test_accounts_list_says_whole_why_an_account_is_out(tmp_path: Path) -> None:
    env = {"QUOTAPOOL_HOME": str(tmp_path), "HOME": str(tmp_path)}
    fixture = Path(__file__).parents[1] / "fixtures" / "auth_sample.json"
    run(f"quotapool accounts import {fixture}", env)
    from quotapool.compose import open_accounts
    from quotapool.config import Settings
    from quotapool.store.sql.db import make_engine

    settings = Settings(home=tmp_path)
    store: AccountStore = open_accounts(settings, make_engine(settings.resolved_database_url))
    (account,) = store.all()
    why = "refresh refused: invalid_grant; run `quotapool accounts login` again"
    store.set_status(account.name, "reauth_required", why, time.time())
    lines = run("quotapool accounts list", env)
    assert any("reauth_required*" in line for line in lines), lines
    assert f"* {account.name}: {why}" in lines
