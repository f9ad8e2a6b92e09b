"""The audit log: every change through the admin API, the dashboard and the CLI is recorded,
with who made it and from what to what, never a secret."""

from __future__ import annotations

import json

import pytest

from quotapool.store.audit import cli_actor
from tests.admin.test_admin_api import admin
from tests.conftest import Harness, HarnessFactory
from tests.proxy.test_client_keys_e2e import cli


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    return harness(routing={"strategy": "sequential"}, accounts_watch_interval=0.1)


def test_changes_through_the_admin_api_are_recorded_with_who_and_what(h: Harness) -> None:
    with admin(h) as api:
        assert api.post("/credentials/alpha/pause").status_code == 200
        assert api.post("/credentials/alpha/resume").status_code == 200
        made = api.post("/keys", json={"name": "laptop", "limits": ["requests=10/day"]})
        secret = made.json()["key"]
        rotated = api.post("/keys/laptop/rotate").json()["key"]
        assert api.post("/keys/laptop/revoke").status_code == 200
        assert api.put("/routing/default", json={"strategy": "round_robin"}).status_code == 200
        assert api.post("/credentials/nobody/pause").status_code == 404  # not a change
        log = api.get("/audit").json()
    actions = [(row["action"], row["target"]) for row in log]
    assert actions[-7:] == [
        ("admin.token", "admin token"),  # the token `admin(h)` made, with the CLI
        ("account.pause", "alpha"),
        ("account.resume", "alpha"),
        ("key.create", "laptop"),
        ("key.rotate", "laptop"),
        ("key.revoke", "laptop"),
        ("routing.set", "default"),
    ]
    pause = log[-6]
    assert pause["actor"] == "admin token from 127.0.0.1"
    assert pause["before"]["status"] == "active" and pause["after"]["status"] == "paused"
    assert log[-7]["actor"] == cli_actor()
    assert log[-4]["after"]["limits"] == ["requests=10/day"]
    assert log[-1]["before"] == {"strategy": "sequential"}
    assert log[-1]["after"] == {"strategy": "round_robin"}
    text = json.dumps(log)
    assert secret not in text and rotated not in text and "sk-" not in text


def test_changes_through_the_cli_are_recorded_and_listed(h: Harness) -> None:
    cli(h, "keys", "create", "ci", "--models", "gpt-5.5")
    cli(h, "accounts", "pause", "bravo")  # through the running server: it records it
    cli(h, "keys", "revoke", "ci")
    rows = [json.loads(line) for line in cli(h, "audit", "--json").splitlines()]
    assert [(r["action"], r["target"]) for r in rows] == [
        ("key.create", "ci"),
        ("account.pause", "bravo"),
        ("key.revoke", "ci"),
    ]
    assert rows[0]["actor"] == rows[2]["actor"] == cli_actor()
    assert rows[1]["actor"] == "cli from 127.0.0.1"  # the run file's token
    assert rows[0]["after"]["models"] == ["gpt-5.5"]
    listed = cli(h, "audit", "--target", "bravo")
    assert "account.pause bravo" in listed and "status: active → paused" in listed
    assert "ci" not in listed.replace("cli", "")
