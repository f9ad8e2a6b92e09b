"""The admin surface (login page, API, docs) is behind the same door as the data plane: the
remote rule, body size and time limits, the connection closed after a refusal; its docs are off
unless asked and served without a CDN; logging out ends the session for good."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from quotapool.compose import build
from quotapool.config import Settings
from tests.conftest import Harness, HarnessFactory
from tests.proxy.test_client_keys_e2e import cli, create


def raw(h: Harness, request: bytes, pause_after: int | None = None) -> bytes:
    """Send `request` (the rest of it after a pause, if asked) and read until the server
    closes the connection."""
    host, port = h.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request if pause_after is None else request[:pause_after])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_huge_login_post_is_refused_before_it_is_read(h: Harness) -> None:
    head = (
        b"POST /quotapool/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"content-type: application/x-www-form-urlencoded\r\n"
        b"content-length: 209715200\r\n\r\n"  # 200 MB announced
    )
    answer = raw(h, head + b"token=" + b"x" * 65536)
    assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower()


def test_a_chunked_admin_body_past_the_bound_is_refused(h: Harness) -> None:
    def chunks() -> object:
        for _ in range(40):  # 2.5 MB, no length announced
            yield b"x" * 65536

    with h.http() as http:
        response = http.post("/quotapool/api/keys", content=chunks())  # type: ignore[arg-type]
    assert response.status_code == 413


def test_an_admin_body_that_stops_arriving_is_cut(harness: HarnessFactory) -> None:
    h = harness(body_timeout_seconds=1)
    request = (
        b"POST /quotapool/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"content-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ntok"
    )
    started = time.monotonic()
    answer = raw(h, request)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 5


async def test_remote_clients_reach_the_admin_surface_only_as_they_reach_the_pool(
    tmp_path: object,
) -> None:
    qp = build(Settings(home=tmp_path, request_log=False))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=qp.app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in ("/quotapool/", "/quotapool/api/credentials", "/quotapool/api/openapi.json"):
            response = await client.get(path)
            assert response.status_code == 403, path
            assert "allow_remote" in response.json()["error"]["message"]
        login = await client.post("/quotapool/login", content=b"token=x")
        assert login.status_code == 403 and login.headers["connection"] == "close"


def test_docs_are_off_unless_asked_and_served_without_a_cdn(harness: HarnessFactory) -> None:
    off = harness()
    with off.http() as http:
        assert http.get("/quotapool/api/docs").status_code == 404
        assert http.get("/quotapool/api/openapi.json").status_code == 200
    on = harness(admin_docs=True)
    with on.http() as http:
        page = http.get("/quotapool/api/docs")
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/quotapool/") for s in sources)  # nothing remote
        for source in sources:
            assert http.get(source).status_code == 200, source


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    return harness(accounts_watch_interval=0.1)


def test_logout_ends_the_session_even_for_a_kept_copy_of_its_cookie(h: Harness) -> None:
    token = cli(h, "admin", "token").strip().splitlines()[-1]
    create(h, "someone")  # (the admin token is read with the keys)
    with h.http() as http:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            login = http.post("/quotapool/login", data={"token": token})
            if login.status_code == 303:
                break
            time.sleep(0.05)
        cookie = login.cookies["quotapool_session"]

    def browser() -> httpx.Client:  # a client holding a copy of the session's cookie
        client = h.http()
        client.cookies.set("quotapool_session", cookie)
        return client

    with browser() as page:
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.get("/quotapool/").text)
        assert csrf is not None
        assert page.get("/quotapool/api/credentials").status_code == 200
        out = page.post("/quotapool/logout", headers={"x-csrf-token": csrf[1]})
        assert out.status_code == 204
    with browser() as copy:
        assert copy.get("/quotapool/api/credentials").status_code == 401
        assert "csrf-token" not in copy.get("/quotapool/").text  # the login page
