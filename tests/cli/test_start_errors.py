"""Start-up failures a new user meets: each one line saying what and what to do, an exit code
≠ 0, the traceback only with --debug. Run as the real command (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.faults.process import free_port

QUOTAPOOL = [sys.executable, "-m", "quotapool"]


def quotapool(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QUOTAPOOL, *args],
        env={**os.environ, "QUOTAPOOL_HOME": str(home), "COLUMNS": "80", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed command (and proof it printed no traceback)."""
    assert result.returncode != 0, result
    text = result.stdout + result.stderr
    assert "Traceback" not in text and "╭" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    return errors[0]


def test_postgresql_without_its_driver_says_which_extra_to_install(tmp_path: Path) -> None:
    # This venv has psycopg (the tests need it); hide it as a bare install lacks it.
    hide = "import sys; sys.modules['psycopg'] = None; from quotapool.cli.main import run; run()"
    env = {**os.environ, "QUOTAPOOL_HOME": str(tmp_path), "COLUMNS": "80"}
    env["QUOTAPOOL_DATABASE_URL"] = "postgresql://127.0.0.1/test"
    for args in (["serve", "--port", "0"], ["config", "check"]):
        result = subprocess.run(
            [sys.executable, "-c", hide, *args], env=env, capture_output=True, text=True
        )
        one_line(result)
        said = [line for line in result.stderr.splitlines() if "quotapool[postgres]" in line]
        assert len(said) == 1, result.stderr


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    unreachable = {"QUOTAPOOL_DATABASE_URL": "postgres://postgres:pw-9@127.0.0.1:1/test"}
    line = one_line(quotapool(tmp_path, "serve", "--port", "0", env=unreachable))
    assert "cannot be opened" in line and "pw-9" not in line
    wrong_name = {"QUOTAPOOL_DATABASE_URL": "postgresql://127.0.0.1/no_such_database_here"}
    line = one_line(quotapool(tmp_path, "serve", "--port", "0", env=wrong_name))
    assert 'database "no_such_database_here" does not exist' in line
    checked = quotapool(tmp_path, "config", "check", env=wrong_name)
    assert checked.returncode == 1 and "cannot connect" in checked.stderr
    ok = quotapool(
        tmp_path, "config", "check", env={"QUOTAPOOL_DATABASE_URL": "postgres://127.0.0.1/test"}
    )
    assert ok.returncode == 0 and "(connected)" in ok.stderr, ok.stderr
    assert len(ok.stderr.splitlines()) < 24 and ok.stdout == ""


def test_demo_while_serve_runs_and_a_second_serve_on_the_same_home(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [*QUOTAPOOL, "serve", "--port", str(port)],
        env={**os.environ, "QUOTAPOOL_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "server.json").exists():
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.05)
        line = one_line(
            quotapool(tmp_path / "elsewhere", "demo", "--port", str(port), "--duration", "0")
        )
        assert f"port {port} is in use" in line
        line = one_line(quotapool(tmp_path, "serve", "--port", str(free_port())))
        assert f"already serves {tmp_path}" in line and f"pid {server.pid}" in line
    finally:
        server.terminate()
        server.wait(20)


def test_an_unexpected_failure_is_one_line_and_the_traceback_comes_with_debug(
    tmp_path: Path,
) -> None:
    (tmp_path / "quotapool.toml").write_text("")
    broken = (
        "import quotapool.server as s\n"
        "def boom(*a, **k): raise RuntimeError('the listener broke\\nsecond line')\n"
        "s.listen = boom\n"
        "from quotapool.cli.main import run; run()"
    )
    env = {**os.environ, "QUOTAPOOL_HOME": str(tmp_path), "COLUMNS": "80"}
    args = [sys.executable, "-c", broken, "serve", "--port", "0"]
    quiet = subprocess.run(args, env=env, capture_output=True, text=True)
    line = one_line(quiet)
    assert "RuntimeError: the listener broke" in line and "--debug" in line
    loud = subprocess.run([*args, "--debug"], env=env, capture_output=True, text=True)
    assert loud.returncode != 0 and "RuntimeError" in loud.stderr and "boom" in loud.stderr
