"""The dashboard opened from another machine: Chromium inside a network namespace (tests/lan.py)
reaches the server by its LAN address, which it does not treat as local."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.admin.test_dashboard_browser import CHROMIUM, QUIET_CHROMIUM, admin_token, shot
from tests.conftest import HarnessFactory, codex_credentials
from tests.lan import Lan, lan


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


def test_signing_in_from_another_machine_works(
    harness: HarnessFactory, far: Lan, page: Page
) -> None:
    h = harness(credentials=codex_credentials(), host="0.0.0.0", allow_remote=True)
    token = admin_token(h)
    lan_url = f"http://{far.server_address}:{_port(h.base)}/quotapool/"
    page.goto(lan_url)
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
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
    response = page.goto(f"http://{far.server_address}:{_port(h.base)}/quotapool/")
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
    login = f"http://{far.server_address}:{_port(h.base)}/quotapool/login"
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
