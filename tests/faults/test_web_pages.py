"""No web page can use the pool: cross-site requests, DNS rebinding and form posts are refused
with a clear error, and nothing reaches an upstream."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from tests.conftest import Harness, HarnessFactory

CHAT = b'{"model":"gpt-5.5","messages":[{"role":"user","content":"hi"}]}'


@pytest.mark.parametrize(
    ("headers", "status", "needle"),
    [
        # What a page on another site sends with fetch(…, {mode: "no-cors", body: "…"}).
        ({"origin": "https://evil.example", "content-type": "text/plain"}, 403, "web pages"),
        ({"origin": "null", "content-type": "application/json"}, 403, "web pages"),
        (
            {"origin": "http://127.evil.example", "content-type": "application/json"},
            403,
            "web pages",
        ),
        (
            {"origin": "http://192.168.1.5:3000", "content-type": "application/json"},
            403,
            "web pages",
        ),
        ({"sec-fetch-site": "cross-site", "content-type": "text/plain"}, 403, "Cross-site"),
        ({"content-type": "text/plain;charset=UTF-8"}, 415, "application/json"),
        ({"content-type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({}, 415, "got none"),
        # DNS rebinding: the page's name now points at 127.0.0.1, its Host header stays.
        ({"host": "evil.example:8410", "content-type": "application/json"}, 400, "allowed_hosts"),
    ],
)
def test_browser_requests_are_refused(
    h: Harness, headers: dict[str, str], status: int, needle: str
) -> None:
    with h.http() as http:
        response = http.post("/v1/chat/completions", content=CHAT, headers=headers)
    assert response.status_code == status
    assert needle in response.json()["error"]["message"]
    assert h.fake.seen == []


def test_rebinding_cannot_read_the_pool(h: Harness) -> None:
    with h.http() as http:
        assert http.get("/quotapool/pool", headers={"host": "evil.example"}).status_code == 400
        assert http.get("/quotapool/pool", headers={"host": "localhost:1"}).status_code == 200
        assert http.get("/quotapool/pool", headers={"host": "[::1]:8410"}).status_code == 200
        # Names that only look like addresses are names: a rebinding page could own them.
        assert http.get("/quotapool/pool", headers={"host": "127.evil.example"}).status_code == 400
        # Addresses are never a rebinding page's Host (it sends its own name).
        assert http.get("/quotapool/pool", headers={"host": "192.168.1.5:8410"}).status_code == 200


def test_same_host_pages_and_configured_names_and_origins_pass(harness: HarnessFactory) -> None:
    h = harness(allowed_hosts=["proxy.internal"], allowed_origins=["https://tools.example.com"])
    with h.http() as http:
        for headers in (
            {"origin": "http://localhost:5173"},
            {"origin": "https://tools.example.com"},
            {"host": "proxy.internal:8410"},
        ):
            response = http.post(
                "/v1/chat/completions",
                content=CHAT,
                headers={"content-type": "application/json", **headers},
            )
            assert response.status_code == 200, (headers, response.text)


def test_a_web_page_cannot_open_a_websocket(h: Harness) -> None:
    async def scenario() -> int:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(
                    f"{h.base}/backend-api/codex/responses",
                    headers={"origin": "https://evil.example"},
                ):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(scenario()) == 403
    assert h.fake.seen == []


def test_two_host_headers_are_refused_and_the_connection_closed(h: Harness) -> None:
    host, port = h.base.removeprefix("http://").split(":")
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(CHAT) + CHAT
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # ends: the server closes a refused connection
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"two Host headers" in answer
    assert h.fake.seen == []


def test_the_dashboard_behind_a_proxy_that_rewrites_host(h: Harness) -> None:
    """nginx in front (deploy/nginx.conf) sends `Host: localhost` whatever the browser
    addressed: the dashboard's own page still signs in, the data plane still refuses a page, and
    another site's page is refused by what the browser says of it."""
    page = {"host": "localhost", "origin": "http://10.0.0.7:8080", "accept": "text/html"}
    with h.http() as http:
        own = http.post(
            "/quotapool/login",
            data={"token": "x"},
            headers={**page, "sec-fetch-site": "same-origin"},
        )
        assert own.status_code == 401 and "not the admin token" in own.text
        other = http.post(
            "/quotapool/login",
            data={"token": "x"},
            headers={**page, "sec-fetch-site": "cross-site"},
        )
        assert other.status_code == 403 and other.headers["content-type"].startswith("text/html")
        data_plane = http.post(
            "/v1/responses",
            json={"model": "gpt-5.5", "input": "hi"},
            headers={**page, "sec-fetch-site": "same-origin"},
        )
        assert data_plane.status_code == 403
