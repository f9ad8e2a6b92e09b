"""Importing auth.json files, API keys, and the account commands — against a real database."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from quotapool.cli.main import app
from quotapool.store.sql.db import make_engine
from quotapool.store.sql.schema import accounts
from quotapool.testing.fake_upstream import FakeUpstream

FIXTURES = Path(__file__).parent.parent / "fixtures"
runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QUOTAPOOL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def listed() -> list[dict[str, object]]:
    code, out = run("accounts", "list", "--json")
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_import_the_real_shaped_sample(home: Path) -> None:
    code, out = run("accounts", "import", str(FIXTURES / "auth_sample.json"))
    assert code == 0, out
    [account] = listed()
    assert account["name"] == "probe@example.com" and account["plan"] == "plus"
    assert account["status"] == "active" and account["kind"] == "codex"


def test_directory_duplicates_and_workspaces(home: Path, tmp_path: Path) -> None:
    fake = FakeUpstream()
    work = fake.add("t1", name="ann", account_id="acct-work")
    personal = fake.add("t2", name="ann", account_id="acct-personal")
    folder = tmp_path / "auths"
    write(folder / "work.json", fake.auth_json(work, email="ann@example.com"))
    write(folder / "nested" / "personal.json", fake.auth_json(personal, email="ann@example.com"))
    write(
        folder / "work-again.json", fake.auth_json(work, email="ann@example.com")
    )  # same login twice
    code, out = run("accounts", "import", str(folder))
    assert code == 0, out
    found = listed()
    assert len(found) == 2 and {a["email"] for a in found} == {"ann@example.com"}  # two workspaces
    assert sorted(str(a["name"]) for a in found)[1].startswith("ann@example.com (acct-")
    code, out = run("accounts", "import", str(folder / "work.json"))
    assert code == 0 and "updated" in out
    assert len(listed()) == 2


def test_a_login_comes_on_standard_input(home: Path) -> None:
    """`docker exec -i quotapool quotapool accounts import - < ~/.codex/auth.json`: the file
    need not be inside the container. Standard input that is not one auth file says so."""
    fake = FakeUpstream()
    login = fake.auth_json(fake.add("t", name="sam", account_id="acct-sam"))
    code, out = run("accounts", "import", "-", input=json.dumps(login))
    assert code == 0, out
    assert [a["name"] for a in listed()] == ["sam@example.com"]
    code, out = run("accounts", "import", "-", input="x" * (2 << 20))
    assert code == 1 and "-: more than 1048576 bytes" in out
    code, out = run("accounts", "import", "-", input="{not json")
    assert code == 1 and "-: not valid JSON" in out


def test_a_bad_file_imports_nothing_and_says_why(home: Path, tmp_path: Path) -> None:
    fake = FakeUpstream()
    good = write(tmp_path / "good.json", fake.auth_json(fake.add("t", name="x", account_id="a1")))
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{not json")
    no_tokens = write(tmp_path / "api-key-mode.json", {"OPENAI_API_KEY": "sk-x", "tokens": None})
    bad_jwt = write(
        tmp_path / "bad-jwt.json",
        {"tokens": {"id_token": "abc", "access_token": "a", "refresh_token": "r"}},
    )
    auth = fake.auth_json(fake.add("u", name="y", account_id="a2"))
    auth["tokens"]["account_id"] = "acct\r\nx-injected: 1"
    crlf = write(tmp_path / "crlf.json", auth)
    code, out = run(
        "accounts", "import", str(good), str(bad_json), str(no_tokens), str(bad_jwt), str(crlf)
    )
    assert code == 1
    assert f"{crlf}: tokens.account_id contains a control character" in out
    assert f"{bad_json}: not valid JSON" in out
    assert f'{no_tokens}: no "tokens" object' in out
    assert f"{bad_jwt}: id_token: not a JWT" in out
    assert "nothing was imported" in out
    assert listed() == []


def test_secrets_are_sealed_and_the_key_file_is_private(home: Path) -> None:
    sample = json.loads((FIXTURES / "auth_sample.json").read_text())
    assert run("accounts", "import", str(FIXTURES / "auth_sample.json"))[0] == 0
    os.environ["QP_TEST_KEY"] = "sk-test-secret-value"
    code, out = run(
        "accounts",
        "add-key",
        "--kind",
        "openai",
        "--name",
        "work",
        "--base-url",
        "http://x/v1",
        "--api-key-env",
        "QP_TEST_KEY",
    )
    assert code == 0, out
    key_file = home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    engine = make_engine(f"sqlite:///{home / 'quotapool.db'}")
    with engine.connect() as connection:
        stored = " ".join(row.secret for row in connection.execute(select(accounts.c.secret)))
    engine.dispose()
    for secret in (
        sample["tokens"]["refresh_token"],
        sample["tokens"]["access_token"][:40],
        "sk-test-secret-value",
    ):
        assert secret not in stored
    code, out = run("accounts", "list")
    assert code == 0 and "sk-test-secret-value" not in out and "rt_probe_fake" not in out
    key_file.write_bytes(b"not a key")
    code, out = run("accounts", "list")
    assert code == 1 and "does not hold a valid key" in out and "Traceback" not in out


def test_wrong_key_is_a_clear_error_at_start(home: Path) -> None:
    assert run("accounts", "import", str(FIXTURES / "auth_sample.json"))[0] == 0
    from cryptography.fernet import Fernet

    (home / "secret.key").write_bytes(Fernet.generate_key())
    code, out = run("serve", "--port", "0")
    assert code == 2
    assert "not the one these secrets were encrypted with" in out


def test_add_key_pause_resume_remove_export(home: Path, tmp_path: Path) -> None:
    code, out = run(
        "accounts",
        "add-key",
        "--kind",
        "anthropic",
        "--name",
        "claude",
        "--base-url",
        "http://x",
        "--api-key-stdin",
        "--models",
        "claude-a,claude-b",
        input="sk-ant-123\n",
    )
    assert code == 0, out
    code, out = run(
        "accounts",
        "add-key",
        "--kind",
        "anthropic",
        "--name",
        "claude",
        "--base-url",
        "http://x",
        "--api-key-stdin",
        input="k\n",
    )
    assert code == 1 and "exists already" in out
    assert run("accounts", "pause", "claude")[0] == 0
    assert listed()[0]["status"] == "paused"
    assert run("accounts", "resume", "claude")[0] == 0
    assert listed()[0]["status"] == "active"
    code, out = run("accounts", "pause", "nobody")
    assert code == 1 and "no account named 'nobody'" in out
    assert run("accounts", "import", str(FIXTURES / "auth_sample.json"))[0] == 0
    target = tmp_path / "out" / "auth.json"
    target.parent.mkdir()
    code, out = run("accounts", "export", "probe@example.com", "--out", str(target))
    assert code == 0, out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    exported = json.loads(target.read_text())
    original = json.loads((FIXTURES / "auth_sample.json").read_text())
    assert exported["tokens"] == original["tokens"] and exported["auth_mode"] == "chatgpt"
    assert run("accounts", "remove", "claude")[0] == 0
    assert [a["name"] for a in listed()] == ["probe@example.com"]


def test_a_gemini_key_needs_no_base_url(home: Path) -> None:
    os.environ["QP_GEMINI_KEY"] = "gk-test-secret"
    add = ["accounts", "add-key", "--kind", "gemini", "--name", "studio"]
    code, out = run(*add, "--api-key-env", "QP_GEMINI_KEY")
    assert code == 0, out
    engine = make_engine(f"sqlite:///{home / 'quotapool.db'}")
    with engine.connect() as connection:
        row = connection.execute(select(accounts.c.kind, accounts.c.base_url)).one()
    engine.dispose()
    assert tuple(row) == ("gemini", "https://generativelanguage.googleapis.com")
    code, out = run("accounts", "list")
    assert code == 0 and "studio" in out and "gk-test-secret" not in out
