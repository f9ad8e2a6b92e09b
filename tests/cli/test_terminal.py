"""Each command's output designed for an 80×24 terminal, checked in a real one (tmux): nothing
the terminal has to wrap but prose, copy-paste commands that run as pasted, the failover
explanation visible."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from quotapool.control.runfile import read
from quotapool.store.accounts import AccountStore
from tests.cli.terminal import WIDTH, run, terminal
from tests.faults.process import free_port


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


def _serving(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _pids_on(home: Path) -> int | None:
    """The pid of the server running from `home` (its run file: one a host with replicas)."""
    running = [read(home, replicas) for replicas in (False, True)]
    return next((r.pid for r in running if r is not None), None)


def test_closing_the_terminal_stops_serve_and_kill_hup_reloads(tmp_path: Path) -> None:
    """A SIGHUP from an operator reloads; the terminal's own hang-up stops the server (one
    process, and --workers with all its workers) instead of leaving it holding the port."""
    for workers in ("1", "2"):
        home = tmp_path / f"home-{workers}"
        home.mkdir(mode=0o755)  # readable by others: warned about once, not once a process
        home.chmod(0o755)
        env = {"QUOTAPOOL_HOME": str(home), "HOME": str(tmp_path)}
        if workers == "2":
            env["QUOTAPOOL_REDIS_URL"] = "redis://127.0.0.1:6379/9"
        port = free_port()
        command = f"quotapool serve --port {port} --workers {workers}"
        with terminal(command, env) as pane:
            deadline = time.monotonic() + 30
            while _pids_on(home) is None or sum(
                "Application startup complete" in line for line in pane.screen()
            ) < int(workers):
                assert time.monotonic() < deadline, pane.screen()
                time.sleep(0.05)
            os.kill(_pids_on(home) or 0, signal.SIGHUP)
            lines = pane.wait_for("routing reloaded")
            assert _serving(port)
            assert sum("readable by other users" in line for line in lines) == 1, lines
            subprocess.run(["tmux", "kill-session", "-t", pane.session], check=True)
            deadline = time.monotonic() + 20
            while _serving(port) or _pids_on(home) is not None:
                assert time.monotonic() < deadline, f"serve --workers {workers} outlived it"
                time.sleep(0.1)
