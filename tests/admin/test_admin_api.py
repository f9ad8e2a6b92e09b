"""The admin API through the real server, with the admin token."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from quotapool.testing.fake_upstream import usage_limit
from tests.conftest import Harness, HarnessFactory
from tests.proxy.test_client_keys_e2e import cli


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    return harness(routing={"strategy": "sequential"}, accounts_watch_interval=0.1)


def admin(h: Harness) -> httpx.Client:
    token = cli(h, "admin", "token").strip().splitlines()[-1]
    headers = {"authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 5  # the server reads the new token within a poll
    while time.monotonic() < deadline:
        if httpx.get(f"{h.base}/quotapool/api/routing", headers=headers).status_code == 200:
            break
        time.sleep(0.05)
    return httpx.Client(base_url=f"{h.base}/quotapool/api", headers=headers, timeout=10)


def routed(h: Harness) -> str:
    with h.http() as http:
        response = http.post("/v1/responses", json={"model": "gpt-5.5", "input": str(uuid.uuid4())})
    return response.headers["x-quotapool-route"].split("credential=")[1]


def test_the_api_needs_the_admin_token_and_documents_itself(h: Harness) -> None:
    with h.http() as http:
        refused = http.get("/quotapool/api/credentials")
        assert refused.status_code == 401
        assert "quotapool admin token" in refused.json()["error"]["message"]
        wrong = http.get("/quotapool/api/credentials", headers={"authorization": "Bearer x"})
        assert wrong.status_code == 401
    with admin(h) as api:
        schema = api.get("/openapi.json").json()
    paths = schema["paths"]
    assert "/quotapool/api/credentials/{name}/pause" in paths and "/quotapool/api/keys" in paths


def test_credentials_pause_and_resume_move_traffic(h: Harness) -> None:
    assert routed(h) == "alpha"
    with admin(h) as api:
        rows = {row["name"]: row for row in api.get("/credentials").json()["credentials"]}
        assert (
            rows["alpha"]["status"] == "active" and rows["alpha"]["primary"]["used_percent"] == 12
        )
        paused = api.post("/credentials/alpha/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        assert routed(h) == "bravo"
        assert api.post("/credentials/nobody/pause").status_code == 404
        assert api.post("/credentials/alpha/resume").json()["status"] == "active"
    assert routed(h) == "alpha"


def test_keys_created_by_the_api_work_and_requests_are_listed(h: Harness) -> None:
    with admin(h) as api:
        made = api.post("/keys", json={"name": "web", "limits": ["requests=10/day"]})
        assert made.status_code == 201
        key = made.json()["key"]
        assert api.post("/keys", json={"name": "bad", "limits": ["x"]}).status_code == 400
        with h.http() as http:
            answer = http.post(
                "/v1/responses",
                json={"model": "gpt-5.5", "input": "hi"},
                headers={"authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 200
        listed = api.get("/keys").json()
        assert [k["name"] for k in listed] == ["web"] and "key" not in listed[0]
        h.rows(1)
        rows = api.get("/requests", params={"key": "web"}).json()
        assert len(rows) == 1 and rows[0]["decision"][0]["selected"] == "alpha"
        invalid = api.get("/requests", params={"limit": 0})
        assert invalid.status_code == 422 and "limit" in invalid.json()["error"]["message"]
        assert api.post("/keys/web/revoke").json()["revoked_at"]
        assert api.get("/routing").json()["profiles"]["default"]["strategy"] == "sequential"


def test_force_probe_refreshes_a_limit_the_upstream_already_reset(h: Harness) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 3600))
    assert routed(h) == "bravo"  # alpha is out for an hour, as its 429 said
    with admin(h) as api:
        assert api.get("/credentials").json()["credentials"][0]["status"] == "quota_exceeded"
        # The upstream reset it early (e.g. a reset event): one minimal request pinned to it.
        probed = api.post("/credentials/alpha/probe").json()
    assert probed["probe"] == {"model": "gpt-5.4-mini", "status": 200, "error": None}
    assert probed["status"] == "active" and probed["back_at"] is None
    assert routed(h) == "alpha"
    assert h.fake.seen[-2].model == "gpt-5.4-mini"  # the probe, then the client's request
    rows = h.rows(3)
    assert [r["scenario"] for r in rows if r["warmup"]] == ["probe"]


def test_usage_per_credential_key_and_model(harness: HarnessFactory) -> None:
    pricing = {"gpt-5.5": 10.0}  # USD per million tokens
    h = harness(routing={"strategy": "sequential", "pricing": pricing}, accounts_watch_interval=0.1)
    with admin(h) as api:
        key = api.post("/keys", json={"name": "team"}).json()["key"]
        with h.http() as http:
            for i in range(3):
                http.post(
                    "/v1/responses",
                    json={"model": "gpt-5.5", "input": f"hi {i}"},
                    headers={"authorization": f"Bearer {key}"},
                )
        h.rows(3)
        by_credential = api.get("/usage", params={"by": "credential"}).json()
        assert [(r["credential"], r["requests"]) for r in by_credential] == [("alpha", 3)]
        row = by_credential[0]
        assert row["input_tokens"] == 3 * 1234
        assert row["cost"] == pytest.approx((row["input_tokens"] + row["output_tokens"]) * 10 / 1e6)
        by_key = api.get("/usage", params={"by": "key", "period": "day"}).json()
        assert [(r["key"], r["requests"]) for r in by_key] == [("team", 3)]
        assert by_key[0]["at"] % 86400 == 0
        assert api.get("/usage", params={"by": "nope"}).status_code == 422
