"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

Screenshots of every view land in test-artifacts/dashboard/ (look at them after a change).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from quotapool.testing.fake_upstream import FakeUpstream, usage_limit
from tests.conftest import Harness, HarnessFactory, codex_credentials
from tests.domain.test_forecast import seed_history
from tests.proxy.test_client_keys_e2e import cli

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
QUIET_CHROMIUM = [  # no calls home from a machine without internet
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: ./scripts/test installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET_CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def h(harness: HarnessFactory) -> Harness:
    creds = codex_credentials() + [
        {"kind": "openai", "name": "openai-key", "api_key": "sk-openai", "models": ["gpt-4.1"]}
    ]
    return harness(
        credentials=creds, routing={"strategy": "sequential"}, accounts_watch_interval=0.1
    )


@pytest.fixture
def page(browser: Browser, h: Harness) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(str(exc)))
    opened.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    failed: list[str] = []
    opened.on(
        "response",
        lambda r: (
            failed.append(f"{r.request.method} {r.url} {r.status}") if r.status >= 400 else None
        ),
    )
    yield opened
    context.close()
    assert problems == [], problems
    assert [f for f in failed if not f.endswith("/quotapool/login 401")] == []


def ask(h: Harness, model: str = "gpt-5.5", key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    with h.http() as http:
        body = {"model": model, "input": str(uuid.uuid4())}
        return http.post("/v1/responses", json=body, headers=headers)


def admin_token(h: Harness) -> str:
    """A new admin token, once the server has read it (it does within a poll)."""
    token = cli(h, "admin", "token").strip().splitlines()[-1]
    deadline = time.monotonic() + 5
    while (
        httpx.get(
            f"{h.base}/quotapool/api/routing", headers={"authorization": f"Bearer {token}"}
        ).status_code
        != 200
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return token


def sign_in(h: Harness, page: Page) -> None:
    token = admin_token(h)
    page.goto(f"{h.base}/quotapool/")
    expect(page.get_by_label("Admin token")).to_be_visible()
    page.get_by_label("Admin token").fill("not-it")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    shot(page, "login")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("status-line")).to_contain_text("sequential")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_accounts_show_quota_resets_and_why_and_pausing_moves_traffic(
    h: Harness, page: Page
) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 3600))
    assert ask(h).headers["x-quotapool-route"].endswith("credential=bravo")
    sign_in(h, page)
    alpha, bravo, charlie = (
        page.locator(f'tr[data-credential="{n}"]') for n in ("alpha", "bravo", "charlie")
    )
    expect(alpha.get_by_test_id("status")).to_have_text("quota_exceeded")
    expect(alpha.get_by_test_id("back-at")).to_have_text(re.compile(r"in (59m|1h 00m)"))
    expect(alpha.get_by_test_id("primary")).to_contain_text("limit reached")  # no reading yet
    expect(bravo.get_by_test_id("status")).to_have_text("active")
    expect(bravo.get_by_test_id("primary")).to_contain_text("12% used · resets in")
    expect(bravo.get_by_test_id("primary").get_by_role("meter")).to_have_attribute(
        "aria-valuenow", "12"
    )
    expect(bravo.get_by_test_id("secondary")).to_contain_text("resets in")
    expect(charlie.get_by_test_id("primary")).to_have_text("not known yet")
    first = alpha.get_by_test_id("back-at").inner_text()
    expect(alpha.get_by_test_id("back-at")).not_to_have_text(first, timeout=3000)  # it counts down
    shot(page, "accounts")

    bravo.get_by_role("button", name="Pause").click()
    expect(bravo.get_by_test_id("status")).to_have_text("paused")
    expect(page.get_by_role("status")).to_contain_text("bravo: paused")
    assert ask(h).headers["x-quotapool-route"].endswith("credential=charlie")
    shot(page, "accounts-paused")
    bravo.get_by_role("button", name="Resume").click()
    expect(bravo.get_by_test_id("status")).to_have_text("active")
    assert ask(h).headers["x-quotapool-route"].endswith("credential=bravo")


def test_switching_strategy_applies_live(h: Harness, page: Page) -> None:
    sign_in(h, page)
    page.get_by_role("button", name="Routing").click()
    page.get_by_label("strategy of default").select_option("round_robin")
    expect(page.get_by_test_id("status-line")).to_contain_text("round_robin")
    expect(page.get_by_test_id("status-line")).to_contain_text("chosen here")
    expect(page.locator('[data-profile="default"]')).to_contain_text(
        "quotapool.toml says sequential"
    )
    shot(page, "routing")
    assert sorted(ask(h).headers["x-quotapool-route"].split("=")[1] for _ in range(3)) == [
        "alpha",
        "bravo",
        "charlie",
    ]
    page.get_by_role("button", name="Back to the configured one").click()
    expect(page.get_by_test_id("status-line")).to_contain_text("sequential")
    assert {ask(h).headers["x-quotapool-route"].split("=")[1] for _ in range(2)} == {"alpha"}


def test_requests_live_with_filters_and_a_decision_explained(h: Harness, page: Page) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 3600))
    ask(h)
    h.rows(1)
    sign_in(h, page)
    page.get_by_role("button", name="Requests").click()
    rows = page.locator("table.log tbody tr")
    expect(rows).to_have_count(1)
    ask(h, "gpt-5.4-mini")  # arrives while the page is open
    expect(rows).to_have_count(2, timeout=8000)
    expect(rows.first).to_contain_text("gpt-5.4-mini")
    rows.nth(1).click()
    decision = page.get_by_test_id("decision")
    expect(decision).to_contain_text("Attempt 1: alpha")
    expect(decision).to_contain_text("Attempt 2: bravo")
    expect(decision).to_contain_text("alpha excluded")
    shot(page, "decision")
    page.get_by_label("model", exact=True).fill("gpt-5.4-mini")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("gpt-5.4-mini")


def test_charts_draw_traffic_quota_and_failovers(h: Harness, page: Page) -> None:
    h.fake.account("tok-a").fail_next(usage_limit(time.time() + 3600))
    for _ in range(3):
        ask(h)
    h.rows(3)
    sign_in(h, page)
    page.get_by_role("button", name="Charts").click()
    page.get_by_label("Range").select_option("minute")
    charts = page.locator(".uplot")
    expect(charts).to_have_count(5)
    expect(page.locator("#chart-requests .u-legend")).to_contain_text("bravo")
    expect(page.locator("#chart-activity .u-legend")).to_contain_text("failovers")
    shot(page, "charts")


def test_keys_are_created_shown_once_used_and_revoked(h: Harness, page: Page) -> None:
    sign_in(h, page)
    page.get_by_role("button", name="Keys").click()
    page.get_by_label("key name").fill("laptop")
    page.get_by_label("limits").fill("requests=2/day")
    page.get_by_role("button", name="Create key").click()
    issued = page.get_by_test_id("issued-key")
    expect(issued).to_contain_text("qp-")
    key = issued.locator("code").inner_text()
    shot(page, "key-created")
    assert ask(h, key=key).status_code == 200
    laptop = page.locator('tr[data-key="laptop"]')
    expect(laptop).to_contain_text("1 of requests=2/day", timeout=8000)
    revoke = laptop.get_by_role("button", name="Revoke")
    revoke.click()
    laptop.get_by_role("button", name="Confirm revoke").click()
    expect(laptop).to_contain_text("revoked")
    shot(page, "keys")
    assert ask(h, key=key).status_code == 401


def test_a_claude_subscription_behind_a_proxy_shows_its_plan_quota_and_egress(
    browser: Browser, harness: HarnessFactory
) -> None:
    def subscription(fake: FakeUpstream, _upstream: str) -> None:
        fake.add("sk-ant-oat01-ann", name="ann-max", claude=True)

    dead = "socks5h://bob:proxy-password-7@127.0.0.1:9"  # only shown, never used here
    credentials = [
        {
            "kind": "claude",
            "name": "ann-max",
            "api_key": "sk-ant-oat01-ann",
            "plan": "claude_max_5x",
        },
        {**codex_credentials()[0], "proxy_url": dead},
    ]
    h = harness(
        credentials=credentials, before_start=subscription, routing={"strategy": "sequential"}
    )
    headers = {"x-app": "cli", "user-agent": "claude-cli/2.1.3 (external, cli)"}
    body = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with h.http() as http:
        assert http.post("/v1/messages", json=body, headers=headers).status_code == 200
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        sign_in(h, page)
        ann = page.locator('[data-credential="ann-max"]')
        expect(ann).to_contain_text("claude · claude_max_5x")
        expect(ann).to_contain_text("12% used")  # its unified 5-hour window
        expect(ann).to_contain_text("resets in")
        alpha = page.locator('[data-credential="alpha"]')
        expect(alpha).to_contain_text("via socks5h://127.0.0.1:9")
        assert "proxy-password-7" not in page.content()
        shot(page, "claude-and-egress")
    finally:
        context.close()


def test_accounts_show_when_each_runs_out_and_the_pools_forecast(h: Harness, page: Page) -> None:
    seed_history(h, time.time())  # alpha: ~1.9 % of its week an hour; bravo: idle
    sign_in(h, page)
    alpha, bravo = (page.locator(f'tr[data-credential="{n}"]') for n in ("alpha", "bravo"))
    expect(alpha.get_by_test_id("runs-out")).to_have_text(
        re.compile(r"runs out in 16h \d\dm at this pace")
    )
    expect(bravo.get_by_test_id("runs-out")).to_have_text("10% used at its reset at this pace")
    page.get_by_role("button", name="Charts").click()  # the weekly chart goes on, dashed
    legend = page.locator("#chart-secondary .u-legend")
    expect(legend).to_contain_text("alpha (at this pace)")
    expect(legend).not_to_contain_text("charlie (at this pace)")  # nothing read: no pace
    shot(page, "charts-forecast")
    page.get_by_role("button", name="Accounts").click()
    forecast = page.get_by_test_id("pool-forecast")
    expect(forecast).to_contain_text("the pool spends 145 weekly credits an hour")
    # (bravo's 90 % less what the pool spends before its reset: the seconds since seeding count)
    expect(forecast).to_contain_text(re.compile(r"3,3\d\d credits \(15%\) are on course to expire"))
    shot(page, "accounts-forecast")


def test_a_change_made_in_the_dashboard_is_in_its_audit_log(h: Harness, page: Page) -> None:
    sign_in(h, page)
    page.locator('tr[data-credential="charlie"]').get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("charlie: paused")
    page.get_by_role("button", name="Audit").click()
    row = page.get_by_test_id("audit").locator('tr[data-action="account.pause"]')
    expect(row).to_contain_text("charlie")
    expect(row).to_contain_text("dashboard from 127.0.0.1")
    expect(row).to_contain_text("status: active → paused")
    token = page.get_by_test_id("audit").locator('tr[data-action="admin.token"]')
    expect(token).to_contain_text("cli (")  # the token sign_in made with the CLI
    shot(page, "audit")


def test_a_request_that_fell_back_says_so(harness: HarnessFactory, browser: Browser) -> None:
    creds = [{**c, "models": ["gpt-5.5"]} for c in codex_credentials()] + [
        {"kind": "openai", "name": "openai-key", "api_key": "sk-openai", "models": ["gpt-4.1"]}
    ]
    fell = harness(
        credentials=creds,
        routing={"strategy": "sequential", "fallback": {"gpt-5.5": ["gpt-4.1"]}},
    )
    for token in ("tok-a", "tok-b", "tok-c"):
        fell.fake.account(token).always = usage_limit(time.time() + 3600)
    assert ask(fell).headers["x-quotapool-fallback"] == "gpt-5.5 -> gpt-4.1"
    fell.rows(1)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    sign_in(fell, page)
    page.get_by_role("button", name="Requests").click()
    row = page.locator("table.log tbody tr").first
    expect(row).to_contain_text("gpt-5.5 → gpt-4.1 (fallback)")
    shot(page, "fallback")
    context.close()
