"""The admin API's changes and views: strategy chosen live (and kept), keys rotated, accounts
removed, requests paged and filtered, activity and quota history, dashboard sessions."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from quotapool.compose import build
from quotapool.domain.credential import Kind
from quotapool.testing.fake_upstream import usage_limit
from tests.admin.test_admin_api import admin, routed
from tests.conftest import Harness, HarnessFactory
from tests.proxy.test_client_keys_e2e import cli


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    return harness(
        routing={"strategy": "sequential"},
        profiles={"batch": {"credentials": ["charlie"]}},
        accounts_watch_interval=0.1,
    )


def test_a_strategy_chosen_live_applies_at_once_and_outlives_reloads_and_restarts(
    h: Harness,
) -> None:
    assert [routed(h) for _ in range(3)] == ["alpha"] * 3
    with admin(h) as api:
        chosen = api.put("/routing/default", json={"strategy": "round_robin"})
        assert chosen.status_code == 200
        default = chosen.json()["profiles"]["default"]
        assert default["strategy"] == "round_robin" and default["chosen"]
        assert default["configured_strategy"] == "sequential"
        assert sorted(routed(h) for _ in range(3)) == ["alpha", "bravo", "charlie"]
        # A reload (SIGHUP) re-reads quotapool.toml; the choice stays over it.
        h.qp.routing.reload(h.qp.settings)
        assert h.qp.dispatcher.routing.default.strategy.name == "round_robin"
        # So does a restart: the choice is in the database.
        again = build(h.qp.settings)
        assert again.dispatcher.routing.default.strategy.name == "round_robin"
        assert again.dispatcher.routing.profiles["batch"].strategy.name == "round_robin"
        unknown = api.put("/routing/default", json={"strategy": "fastest"})
        assert unknown.status_code == 400 and "round_robin" in unknown.json()["error"]["message"]
        nowhere = api.put("/routing/nowhere", json={"strategy": "round_robin"})
        assert nowhere.status_code == 404 and "batch" in nowhere.json()["error"]["message"]
        back = api.put("/routing/default", json={"strategy": None}).json()["profiles"]
        assert back["default"]["strategy"] == "sequential" and not back["default"]["chosen"]
    assert [routed(h) for _ in range(2)] == ["alpha"] * 2
    assert build(h.qp.settings).dispatcher.routing.default.strategy.name == "sequential"


def test_rotating_a_key_through_the_api_retires_its_old_secret(h: Harness) -> None:
    with admin(h) as api:
        old = api.post("/keys", json={"name": "ci", "limits": ["requests=5/day"]}).json()["key"]
        new = api.post("/keys/ci/rotate").json()["key"]
        assert new != old and new.startswith("qp-")
        with h.http() as http:
            body = {"model": "gpt-5.5", "input": "hi"}
            assert http.post("/v1/responses", json=body, headers=_bearer(old)).status_code == 401
            assert http.post("/v1/responses", json=body, headers=_bearer(new)).status_code == 200
        listed = api.get("/keys").json()[0]
        assert listed["usage"][0]["limit"] == "requests=5/day" and listed["usage"][0]["amount"] == 5
        assert api.post("/keys/nobody/rotate").status_code == 404
        api.post("/keys/ci/revoke")
        assert api.post("/keys/ci/rotate").status_code == 400


def test_removing_an_account_takes_it_out_but_a_configured_credential_stays(h: Harness) -> None:
    h.qp.accounts.store.add_key(
        kind=Kind.OPENAI,
        name="extra",
        base_url=f"{h.upstream}/v1",
        api_key="sk-openai",
        models=["gpt-4.1"],
        weight=1.0,
        priority=0,
        now=time.time(),
    )
    with admin(h) as api:
        deadline = time.monotonic() + 5
        while "extra" not in _names(api) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.delete("/credentials/extra").json() == {"removed": "extra"}
        assert "extra" not in _names(api)
        refused = api.delete("/credentials/alpha")
        assert refused.status_code == 400 and "quotapool.toml" in refused.json()["error"]["message"]
        assert "alpha" in _names(api)


def test_requests_are_filtered_and_paged_and_failovers_and_quota_are_charted(
    h: Harness,
) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 3600))
    with h.http() as http:
        for model in ("gpt-5.5", "gpt-5.4-mini", "gpt-5.5", "gpt-5.5"):
            http.post("/v1/responses", json={"model": model, "input": str(uuid.uuid4())})
    h.rows(4)
    with admin(h) as api:
        everything = api.get("/requests").json()
        assert len(everything) == 4 and everything[0]["attempts"] == 2  # alpha, then bravo
        newest = api.get("/requests", params={"limit": 2}).json()
        older = api.get("/requests", params={"limit": 2, "before_id": newest[0]["id"]}).json()
        assert [r["id"] for r in older + newest] == [r["id"] for r in everything]
        mini = api.get("/requests", params={"model": "gpt-5.4-mini"}).json()
        assert [r["model"] for r in mini] == ["gpt-5.4-mini"]
        assert api.get("/requests", params={"profile": "batch"}).json() == []
        minutes = api.get("/activity", params={"period": "minute"}).json()
        assert sum(r["requests"] for r in minutes) == 4
        assert sum(r["failovers"] for r in minutes) == 1 and sum(r["errors"] for r in minutes) == 0
        deadline = time.monotonic() + 5  # the usage history is written in batches
        while not (history := api.get("/quota-history", params={"credential": "bravo"}).json()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert {r["window"] for r in history} >= {"primary", "secondary"}
        assert {r["credential"] for r in history} == {"bravo"}
        assert history[0]["source"] == "headers" and history[0]["used_percent"] > 0


def test_the_dashboard_session_stands_for_the_token_and_refuses_forged_changes(
    h: Harness,
) -> None:
    token = cli(h, "admin", "token").strip().splitlines()[-1]
    with httpx.Client(base_url=h.base, timeout=10) as browser:
        for _ in range(100):  # the server reads the new token within a poll
            if browser.get("/quotapool/api/routing", headers=_bearer(token)).status_code == 200:
                break
            time.sleep(0.05)
        page = browser.get("/quotapool/")
        assert page.status_code == 200 and 'name="token"' in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        wrong = browser.post("/quotapool/login", data={"token": "qp-admin-guess"})
        assert wrong.status_code == 401 and "not the admin token" in wrong.text
        signed_in = browser.post("/quotapool/login", data={"token": token})
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/quotapool" in cookie
        assert token not in signed_in.headers["set-cookie"]
        home = browser.get("/quotapool/")
        csrf = home.text.split('name="csrf-token" content="')[1].split('"')[0]
        assert browser.get("/quotapool/api/credentials").status_code == 200
        forged = browser.post("/quotapool/api/credentials/alpha/pause")
        assert forged.status_code == 403 and "CSRF" in forged.json()["error"]["message"]
        other_site = browser.post(
            "/quotapool/api/credentials/alpha/pause",
            headers={"x-csrf-token": csrf, "origin": "https://evil.example"},
        )
        assert other_site.status_code == 403
        paused = browser.post(
            "/quotapool/api/credentials/alpha/pause", headers={"x-csrf-token": csrf}
        )
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        # A new admin token ends every session opened with the old one.
        cli(h, "admin", "token")
        deadline = time.monotonic() + 5
        while browser.get("/quotapool/api/credentials").status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert browser.get("/quotapool/api/credentials").status_code == 401


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _names(api: httpx.Client) -> set[str]:
    return {row["name"] for row in api.get("/credentials").json()["credentials"]}
