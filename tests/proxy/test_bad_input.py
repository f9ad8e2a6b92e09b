"""Bad input gets a clear error in the route's API shape: never a traceback, never a hang."""

from __future__ import annotations

import httpx
import pytest

from quotapool.compose import build
from quotapool.config import Settings
from tests.conftest import Harness, HarnessFactory


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/responses", b"{not json", 400, "not valid JSON"),
        ("/v1/responses", b"[1, 2]", 400, "must be a JSON object"),
        ("/v1/chat/completions", b'{"messages": []}', 400, "Missing 'model'"),
        ("/v1/responses", b'{"model": "gpt-5.5", "stream": "yes"}', 400, "'stream' must be"),
        ("/v1/chat/completions", b'{"model": "gpt-5.5", "messages": "hi"}', 400, "'messages'"),
        ("/v1/nothing", b"{}", 404, "No route /v1/nothing"),
    ],
)
def test_openai_shaped_errors(h: Harness, path: str, body: bytes, status: int, needle: str) -> None:
    with h.http() as http:
        response = http.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"] and error["type"]
    assert "Traceback" not in response.text


def test_builtin_tool_on_chat_is_refused_by_name(h: Harness) -> None:
    with h.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={
                "model": "gpt-5.5",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "web_search"}],
            },
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "web_search" in error["message"] and error["param"] == "tools[0]"


def test_anthropic_route_speaks_anthropic(h: Harness) -> None:
    with h.http() as http:
        response = http.post(
            "/v1/messages", content=b"{oops", headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": response.json()["error"]["message"]},
    }


def test_wrong_method_is_405_with_allow(h: Harness) -> None:
    with h.http() as http:
        response = http.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "use POST" in response.json()["error"]["message"]


def test_body_over_limit_is_413(harness: HarnessFactory) -> None:
    h = harness(max_body_bytes=1000)
    with h.http() as http:
        big = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "x" * 2000})
        chunked = http.post(
            "/v1/responses",
            content=iter([b'{"model": "gpt-5.5", "input": "', b"x" * 2000, b'"}']),
            headers={"content-type": "application/json"},
        )
    for response in (big, chunked):
        assert response.status_code == 413
        assert "max_body_bytes" in response.json()["error"]["message"]
    assert h.fake.seen == []


async def test_remote_clients_are_refused_without_client_keys(tmp_path: object) -> None:
    qp = build(Settings(home=tmp_path, request_log=False))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=qp.app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://qp") as client:
        response = await client.post("/v1/responses", json={"model": "m", "input": "x"})
    assert response.status_code == 403
    assert "allow_remote" in response.json()["error"]["message"]
    assert response.headers["connection"] == "close"  # it holds no slot while it drips on


async def test_probes_answer_remote_load_balancers_but_the_pool_view_does_not(
    tmp_path: object,
) -> None:
    """A Kubernetes probe or a cloud load balancer's health check comes from another host:
    `/health` and `/ready` answer it, keys or not; the pool's view stays loopback-only."""
    qp = build(Settings(home=tmp_path, request_log=False))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=qp.app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8410") as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] != "ready"  # no credentials
        pool = await client.get("/quotapool/pool")
        assert pool.status_code == 403 and "allow_remote" in pool.json()["error"]["message"]
