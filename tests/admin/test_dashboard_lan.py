"""The dashboard opened from another machine: Chromium inside a network namespace (tests/lan.py)
reaches the server by its LAN address, which it does not treat as local."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.admin.test_dashboard_browser import CHROMIUM, QUIET_CHROMIUM, admin_token, shot
from tests.conftest import Harness, HarnessFactory, codex_credentials
from tests.lan import Lan, lan
from tests.proxy.test_client_keys_e2e import create
from tests.proxy.test_websocket import HEADERS, exchange


@pytest.fixture(scope="module")
def far() -> Iterator[Lan]:
    with lan() as made:
        yield made


@pytest.fixture
def page(far: Lan, tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(far.wrapper(tmp_path, CHROMIUM)), args=QUIET_CHROMIUM
        )
        yield browser.new_page(viewport={"width": 1200, "height": 800})
        browser.close()


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def from_far(far: Lan, h: Harness, path: str = "/quotapool/") -> str:
    """`path` of the server as the other machine addresses it (its LAN address)."""
    return f"http://{far.server_address}:{_port(h.base)}{path}"


def sign_in_from_far(far: Lan, h: Harness, page: Page) -> None:
    token = admin_token(h)
    page.goto(from_far(far, h))
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_signing_in_from_another_machine_works(
    harness: HarnessFactory, far: Lan, page: Page
) -> None:
    h = harness(credentials=codex_credentials(), host="0.0.0.0", allow_remote=True)
    sign_in_from_far(far, h, page)
    expect(page.get_by_test_id("status-line")).to_contain_text("round_robin")
    shot(page, "lan-signed-in")
    # The signed-in page changes things through the API from its LAN origin too.
    page.get_by_role("button", name="Routing").click()
    page.get_by_label("strategy of default").select_option("sequential")
    expect(page.get_by_test_id("status-line")).to_contain_text("sequential")


def test_a_refusal_seen_in_a_browser_is_a_page_saying_what_to_do(
    harness: HarnessFactory, far: Lan, page: Page
) -> None:
    h = harness(credentials=codex_credentials(), host="0.0.0.0")  # no keys, not allow_remote
    response = page.goto(from_far(far, h))
    assert response is not None and response.status == 403
    assert response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("alert")).to_contain_text("allow_remote = true")
    shot(page, "lan-refused")
    # A script (no text/html in Accept) still gets the JSON error its SDK reads.
    with httpx.Client() as http:
        script = http.get(f"http://127.0.0.1:{_port(h.base)}/quotapool/api/routing")
    assert script.headers["content-type"].startswith("application/json")


def test_another_site_still_cannot_post_to_the_dashboard(
    harness: HarnessFactory, far: Lan, page: Page
) -> None:
    h = harness(credentials=codex_credentials(), host="0.0.0.0", allow_remote=True)
    token = admin_token(h)
    login = from_far(far, h, "/quotapool/login")
    # A page of another origin (about:blank here: Origin null, Sec-Fetch-Site cross-site)
    # submitting the sign-in form with a token it somehow holds.
    page.set_content(
        f'<form method="post" action="{login}"><input name="token" value="{token}">'
        '<button type="submit">go</button></form>'
    )
    with page.expect_navigation():
        page.get_by_role("button", name="go").click()
    expect(page.get_by_role("alert")).to_contain_text("Requests from web pages")
    assert "quotapool_session" not in {c["name"] for c in page.context.cookies()}


def _socket_turn(base: str, key: str) -> None:
    async def session() -> None:
        headers = {**HEADERS, "authorization": f"Bearer {key}"}
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{base}/backend-api/codex/responses", headers=headers) as socket,
        ):
            body = {"model": "gpt-5.5", "stream": True, "store": False, "input": "hi"}
            assert (await exchange(socket, body))[-1]["type"] == "response.completed"

    with ThreadPoolExecutor(1) as thread:  # (Playwright's loop runs in this one)
        thread.submit(asyncio.run, session()).result()


def test_dashboard_details_on_a_phone_from_another_machine(
    harness: HarnessFactory, far: Lan, page: Page
) -> None:
    """Keys expire on a date, API keys show their rate limit (no 5-hour window), a credential
    keeps its colour from chart to chart, a socket's row says what it is, and a phone-sized
    window needs no sideways scrolling."""
    creds = codex_credentials() + [
        {"kind": "openai", "name": "openai-key", "api_key": "sk-openai", "models": ["gpt-4.1"]}
    ]
    h = harness(credentials=creds, host="0.0.0.0", accounts_watch_interval=0.1)
    key = create(h, "laptop", "--expires", "30d")
    with h.http() as http:
        for model in ("gpt-5.5", "gpt-5.5", "gpt-4.1"):
            answer = http.post(
                "/v1/responses",
                json={"model": model, "input": "hi"},
                headers={"authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 200
    _socket_turn(h.base, key)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in_from_far(far, h, page)
    expect(page.get_by_test_id("status-line")).to_be_visible()

    def fits() -> None:
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px"

    api_key = page.locator('[data-credential="openai-key"]')
    expect(api_key.get_by_test_id("primary")).to_contain_text("rate limit")
    expect(api_key.get_by_test_id("secondary")).to_have_text("—")
    assert "resets in 0m 00s" not in page.get_by_test_id("accounts").inner_text()
    fits()
    shot(page, "phone-accounts")
    page.get_by_role("button", name="Keys").click()
    expires = time.time() + 30 * 86400
    expect(page.locator('[data-key="laptop"]').get_by_test_id("expires")).to_contain_text(
        time.strftime("%Y", time.localtime(expires))
    )
    fits()
    page.get_by_role("button", name="Requests").click()
    expect(page.locator("table.log")).to_contain_text("(socket: a row per turn)")
    assert "null" not in page.locator("table.log").inner_text()
    fits()
    shot(page, "phone-requests")
    page.get_by_role("button", name="Charts").click()
    expect(page.locator("#chart-primary .u-legend")).to_contain_text("alpha")
    fits()

    def colour(chart: str) -> str:
        marker = page.locator(f"#{chart} .u-legend .u-series", has_text="alpha").locator(
            ".u-marker"
        )
        return str(marker.evaluate("m => getComputedStyle(m).borderColor"))

    assert colour("chart-requests") == colour("chart-tokens") == colour("chart-primary")
    shot(page, "phone-charts")
