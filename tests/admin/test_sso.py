"""Single sign-on from the proxy in front: `trusted_user_header` opens a dashboard session for
the user it names — only from `trusted_proxies` — and the audit log names that user."""

from __future__ import annotations

import re

import httpx
import pytest

from quotapool.config import Settings
from tests.conftest import HarnessFactory

HEADER = {"x-forwarded-user": "alice@example.com"}


def _csrf(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found, page[:300]
    return found.group(1)


def test_a_user_signed_in_by_the_trusted_proxy_gets_the_dashboard_and_is_audited(
    harness: HarnessFactory,
) -> None:
    h = harness(trusted_user_header="X-Forwarded-User", trusted_proxies=["127.0.0.0/8"])
    with httpx.Client(base_url=h.base) as browser:
        page = browser.get("/quotapool/", headers=HEADER)  # no admin token exists: none needed
        assert page.status_code == 200 and "quotapool_session" in browser.cookies
        csrf = _csrf(page.text)
        changed = browser.post(
            "/quotapool/api/credentials/alpha/pause", headers={"x-csrf-token": csrf}
        )
        assert changed.status_code == 200
        refused = browser.post("/quotapool/api/credentials/alpha/resume")  # no CSRF token
        assert refused.status_code == 403
        log = browser.get("/quotapool/api/audit").json()
    assert log[-1]["actor"] == "dashboard (alice@example.com) from 127.0.0.1"
    assert log[-1]["action"] == "account.pause"
    with httpx.Client(base_url=h.base) as stranger:
        assert "Admin token" in stranger.get("/quotapool/").text  # no header: the login page
        assert stranger.get("/quotapool/api/audit").status_code == 401


def test_the_header_from_anywhere_else_is_ignored(harness: HarnessFactory) -> None:
    h = harness(trusted_user_header="X-Forwarded-User", trusted_proxies=["10.9.9.9"])
    with httpx.Client(base_url=h.base) as browser:
        page = browser.get("/quotapool/", headers=HEADER)
        assert "Admin token" in page.text and "quotapool_session" not in browser.cookies
        assert browser.get("/quotapool/api/audit", headers=HEADER).status_code == 401


def test_the_header_needs_the_proxies_it_is_believed_from() -> None:
    with pytest.raises(ValueError, match="trusted_user_header needs trusted_proxies"):
        Settings(trusted_user_header="X-Forwarded-User")
    with pytest.raises(ValueError, match="not an address or network"):
        Settings(trusted_user_header="X-User", trusted_proxies=["proxy.example.com"])
