"""Settings: TOML file, env overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from quotapool.compose import credentials_from
from quotapool.config import ConfigError, Settings, load_settings

TOML = """
port = 9000
codex_base_url = "http://127.0.0.1:1/backend-api"

[routing]
strategy = "fill_first"

[[credentials]]
kind = "openai"
name = "work"
base_url = "https://api.example.com/v1"
api_key_env = "WORK_KEY"
models = ["gpt-4.1"]
weight = 2
priority = 1

[[credentials]]
kind = "codex"
name = "me"
api_key = "access-token"
account_id = "acct-1"
"""


def test_file_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "quotapool.toml").write_text(TOML)
    monkeypatch.setenv("QUOTAPOOL_HOME", str(tmp_path))
    monkeypatch.setenv("QUOTAPOOL_PORT", "9100")
    monkeypatch.setenv("QUOTAPOOL_ROUTING__MAX_ATTEMPTS", "5")
    monkeypatch.setenv("WORK_KEY", "sk-work")
    settings = load_settings()
    assert settings.port == 9100 and settings.routing.strategy == "fill_first"
    assert settings.routing.max_attempts == 5
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'quotapool.db'}"
    credentials, secrets = credentials_from(settings)
    assert [c.name for c in credentials] == ["work", "me"]
    assert credentials[0].models == frozenset({"gpt-4.1"}) and credentials[0].priority == 1
    assert credentials[1].base_url == "http://127.0.0.1:1/backend-api"
    assert secrets["work"].token == "sk-work" and secrets["me"].account_id == "acct-1"
    assert "sk-work" not in repr(secrets) and "access-token" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("port = 'x'", "port"),
        ("[[credentials]]\nkind = 'openai'\nname = 'a'\napi_key = 'k'", "need a base_url"),
        ("[[credentials]]\nkind = 'codex'\nname = 'a'", "set api_key or api_key_env"),
        (
            "[[credentials]]\nkind = 'mistral'\nname = 'a'\napi_key = 'k'",
            "'kind' of credential 'a'",
        ),
        ("surprise = 1", "unknown setting 'surprise' \\(known: .*port"),
        ("[routing]\nstratgy = 'x'", r"'stratgy' in \[routing\]; did you mean 'strategy'\?"),
        (
            "[[credentials]]\nkind = 'codex'\nname = 'w'\napi_key = 'k'\nweigth = 2",
            "unknown setting 'weigth' of credential 'w'; did you mean 'weight'",
        ),
        (
            "[profiles.batch]\nstrategi = 'x'",
            r"'strategi' in \[profiles.batch\]; did you mean 'strategy'",
        ),
        ("port = ", "not valid TOML"),
        (
            "[[credentials]]\nkind = 'codex'\nname = \"a\\r\\nb\"\napi_key = 'k'",
            "name contains a control",
        ),
        (
            "[[credentials]]\nkind = 'codex'\nname = 'a'\napi_key = 'k'\naccount_id = \"x\\ny\"",
            "account_id contains a control",
        ),
        (
            "[[credentials]]\nkind = 'anthropic'\nname = 'a'\napi_key = 'k'\nbase_url = 'u'\n"
            "apis = ['chat']",
            "apis is for openai credentials",
        ),
        (
            "[[credentials]]\nkind = 'openai'\nname = 'a'\napi_key = 'k'\nbase_url = 'u'\n"
            "apis = ['messages']",
            "apis",
        ),
    ],
)
def test_bad_config_says_what_to_fix(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "q.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_settings(path)


def test_a_bad_environment_override_is_blamed_on_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTAPOOL_ROUTING__MAX_ATTEMPTS", "many")
    path = tmp_path / "q.toml"
    path.write_text("port = 1234\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert "QUOTAPOOL_ROUTING__MAX_ATTEMPTS (environment variable)" in str(raised.value)
    assert str(path) not in str(raised.value)  # the file is fine


def test_missing_env_key_and_duplicate_names(tmp_path: Path) -> None:
    path = tmp_path / "q.toml"
    path.write_text("[[credentials]]\nkind='codex'\nname='a'\napi_key_env='QP_NOPE_UNSET'\n")
    with pytest.raises(ConfigError, match="QP_NOPE_UNSET is not set"):
        credentials_from(load_settings(path))
    path.write_text("[[credentials]]\nkind='codex'\nname='a'\napi_key='1'\n" * 2)
    with pytest.raises(ConfigError, match="two credentials are named 'a'"):
        credentials_from(load_settings(path))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_profiles_inherit_strategy_and_modifiers_but_not_what_they_route_to() -> None:
    settings = Settings(
        routing={"strategy": "fill_first", "budget_safe": False, "warmup": {"credentials": ["a"]}},
        profiles={
            "default": {"budget_threshold": 80},
            "fast": {"credentials": ["b"], "models": {"think": "gpt-5.5"}},
        },
    )
    profiles = settings.routing_profiles()
    default, fast = profiles["default"], profiles["fast"]
    assert default.budget_threshold == 80 and default.warmup is not None  # [routing] + override
    assert fast.strategy == "fill_first" and fast.budget_safe is False  # inherited
    assert fast.warmup is None and fast.credentials == ("b",)  # its own
    with pytest.raises(ValidationError, match="profile 'x': unknown strategy 'nope'"):
        Settings(profiles={"x": {"strategy": "nope"}})
    with pytest.raises(ValidationError, match="profile name 'a b'"):
        Settings(profiles={"a b": {}})
