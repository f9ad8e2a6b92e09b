"""An egress per account, through real proxies (tinyproxy, microsocks): every connection an
account makes leaves by its own proxy, and a dead proxy never turns into a direct connection."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from quotapool.accounts import oauth
from quotapool.cli.main import app
from quotapool.store.sql.schema import accounts
from quotapool.testing.fake_upstream import FakeUpstream
from tests.admin.test_admin_api import admin
from tests.conftest import Harness, HarnessFactory, codex_credentials
from tests.net.proxies import (
    DIRECT_OUT,
    HTTP_PASSWORD,
    HTTP_PROXY_OUT,
    SOCKS_PASSWORD,
    SOCKS_PROXY_OUT,
    dead_proxy,
    http_proxy,
    socks_proxy,
)

runner = CliRunner()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def addresses(fake: FakeUpstream) -> dict[str, set[str]]:
    """Each account's source addresses, as the upstream saw them."""
    seen: dict[str, set[str]] = {}
    for peer in fake.peers:
        if peer.account is not None:
            seen.setdefault(peer.account, set()).add(peer.address)
    return seen


def paths(fake: FakeUpstream, account: str) -> set[str]:
    return {p.path for p in fake.peers if p.account == account}


def ask(h: Harness, n: int = 1) -> list[int]:
    with h.http() as http:  # n conversations
        return [
            http.post("/v1/responses", json={"model": "gpt-5.5", "input": f"hi {i}"}).status_code
            for i in range(n)
        ]


def test_every_connection_of_an_account_leaves_through_its_own_proxy(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """Requests, usage polls and model lists: alpha's through the HTTP proxy, bravo's through
    the SOCKS5 one, charlie's directly."""
    with http_proxy(tmp_path / "tinyproxy") as via_http, socks_proxy() as via_socks:
        credentials = codex_credentials()
        credentials[0]["proxy_url"] = via_http
        credentials[1]["proxy_url"] = via_socks
        h = harness(credentials=credentials, usage_poll_interval=0.3, codex_models_refresh=3600)
        assert ask(h, 6) == [200] * 6
        wait_for(lambda: all("/backend-api/wham/usage" in paths(h.fake, n) for n in CODEX_NAMES))
        assert addresses(h.fake) == {
            "alpha": {HTTP_PROXY_OUT},
            "bravo": {SOCKS_PROXY_OUT},
            "charlie": {DIRECT_OUT},
        }
        for name in CODEX_NAMES:
            assert {
                "/backend-api/codex/responses",
                "/backend-api/wham/usage",
                "/backend-api/codex/models",
            } <= paths(h.fake, name)
        with h.http() as http:  # the egress is shown, host only
            view = http.get("/quotapool/pool").json()["credentials"]
        shown = {c["name"]: c["egress"] for c in view}
        port = via_socks.rsplit(":", 1)[1]
        assert shown["bravo"] == f"socks5h://127.0.0.1:{port}" and shown["charlie"] == "direct"
        assert HTTP_PASSWORD not in json.dumps(view) and SOCKS_PASSWORD not in json.dumps(view)


CODEX_NAMES = ("alpha", "bravo", "charlie")


def _import(home: Path, fake: FakeUpstream, token: str, ttl: float, *extra: str) -> str:
    account = fake.account(token)
    folder = home / "auths" / token
    folder.mkdir(parents=True)
    (folder / "auth.json").write_text(json.dumps(fake.auth_json(account, ttl)))
    env = {"QUOTAPOOL_HOME": str(home), "ALPHA_PROXY": _proxies["http"]}
    result = runner.invoke(app, ["accounts", "import", str(folder), *extra], env=env)
    assert result.exit_code == 0, result.output
    return f"{account.name}@example.com"


_proxies: dict[str, str] = {}


def test_imported_accounts_refresh_and_poll_through_their_egress(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """alpha imported with --proxy-env (its expired token is refreshed through that proxy),
    bravo on the server's default ([network] proxy_url), charlie set to "direct"."""
    with http_proxy(tmp_path / "tinyproxy") as via_http, socks_proxy() as via_socks:
        _proxies["http"] = via_http

        def accounts_with_egress(fake: FakeUpstream, _upstream: str) -> None:
            _import(tmp_path, fake, "tok-a", -60, "--proxy-env", "ALPHA_PROXY")
            _import(tmp_path, fake, "tok-b", 3600)
            charlie = _import(tmp_path, fake, "tok-c", 3600)
            env = {"QUOTAPOOL_HOME": str(tmp_path)}
            moved = runner.invoke(app, ["accounts", "set-proxy", charlie, "direct"], env=env)
            assert moved.exit_code == 0 and "direct" in moved.output, moved.output

        h = harness(
            credentials=[],
            before_start=accounts_with_egress,
            network={"proxy_url": via_socks},
            routing={"strategy": "sequential"},
            usage_poll_interval=0.3,
        )
        assert ask(h) == [200]
        assert h.fake.account("tok-a").refreshes == 1
        wait_for(lambda: len({p.account for p in h.fake.peers if "usage" in p.path}) == 3)
        assert addresses(h.fake) == {
            "alpha": {HTTP_PROXY_OUT},
            "bravo": {SOCKS_PROXY_OUT},
            "charlie": {DIRECT_OUT},
        }
        refreshes = {p.address for p in h.fake.peers if p.path == "/oauth/token"}
        assert refreshes == {HTTP_PROXY_OUT}

        listed = runner.invoke(
            app, ["accounts", "list", "--json"], env={"QUOTAPOOL_HOME": str(tmp_path)}
        )
        assert listed.exit_code == 0, listed.output
        egress = {row["name"]: row["egress"] for row in map(json.loads, listed.output.splitlines())}
        assert egress["alpha@example.com"].startswith("http://127.0.0.1:")
        assert egress["bravo@example.com"].startswith("socks5h://127.0.0.1:")
        assert egress["charlie@example.com"] == "direct"
        assert HTTP_PASSWORD not in listed.output and SOCKS_PASSWORD not in listed.output
        engine = h.qp.request_log.engine if h.qp.request_log else None
        assert engine is not None
        with engine.connect() as connection:  # sealed at rest
            stored = [r.proxy for r in connection.execute(select(accounts.c.proxy))]
        assert any(stored) and not any(HTTP_PASSWORD in (s or "") for s in stored)


def test_an_account_whose_proxy_is_down_fails_over_and_never_goes_direct(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = codex_credentials()
    dead = dead_proxy()
    credentials[0]["proxy_url"] = dead
    h = harness(credentials=credentials, routing={"strategy": "sequential"})
    with caplog.at_level(logging.INFO):
        assert ask(h) == [200]  # on bravo, the client none the wiser
    assert h.fake.served_by() == ["bravo"]
    assert "alpha" not in addresses(h.fake)  # not one direct connection
    row = h.rows(1)[0]
    port = dead.rsplit(":", 1)[1]
    assert f"egress proxy socks5h://127.0.0.1:{port} failed" in row["decision"]
    assert h.state("alpha").status.value != "active" or h.state("alpha").backoff_until > 0
    assert f"alpha: egress proxy socks5h://127.0.0.1:{port} failed" in caplog.text
    assert "its upstream was not reached" in caplog.text
    assert SOCKS_PASSWORD not in caplog.text and SOCKS_PASSWORD not in json.dumps(row)


def test_an_account_alone_behind_a_dead_proxy_answers_an_error_naming_the_proxy(
    harness: HarnessFactory,
) -> None:
    dead = dead_proxy()
    h = harness(credentials=[{**codex_credentials()[0], "proxy_url": dead}])
    with h.http() as http:
        answer = http.post("/v1/responses", json={"model": "gpt-5.5", "input": "hi"})
    assert answer.status_code in (502, 503), answer.text
    message = answer.json()["error"]["message"]
    assert "egress proxy socks5h://127.0.0.1:" in message and SOCKS_PASSWORD not in answer.text
    assert h.fake.peers == []


def test_a_probe_leaves_through_the_accounts_proxy_and_a_dead_one_is_reported(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    with http_proxy(tmp_path / "tinyproxy") as via_http:
        credentials = codex_credentials()
        credentials[0]["proxy_url"] = via_http
        credentials[1]["proxy_url"] = dead_proxy()
        h = harness(credentials=credentials)
        with admin(h) as api:
            alive = api.post("/credentials/alpha/probe").json()["probe"]
            dead = api.post("/credentials/bravo/probe").json()["probe"]
    assert alive["status"] == 200 and addresses(h.fake) == {"alpha": {HTTP_PROXY_OUT}}
    assert "egress proxy socks5h://127.0.0.1:" in (dead["error"] or "")
    assert SOCKS_PASSWORD not in json.dumps(dead)


def test_a_login_reaches_the_auth_server_through_the_proxy_it_is_given(
    harness: HarnessFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(credentials=[])
    h.fake.login_as = h.fake.add("tok-new", name="newbie", account_id="acct-new")
    pkce = oauth.new_pkce()
    monkeypatch.setattr(oauth, "new_pkce", lambda: pkce)
    with httpx.Client() as http:
        redirect = http.get(oauth.authorize_url(h.upstream, pkce)).headers["location"]
    with socks_proxy() as via_socks:
        env = {
            "QUOTAPOOL_HOME": str(tmp_path / "other"),
            "QUOTAPOOL_AUTH_BASE_URL": h.upstream,
            "NEWBIE_PROXY": via_socks,
        }
        command = ["accounts", "login", "--manual", "--proxy-env", "NEWBIE_PROXY"]
        result = runner.invoke(app, command, input=redirect + "\n", env=env)
    assert result.exit_code == 0, result.output
    assert {p.address for p in h.fake.peers if p.path == "/oauth/token"} == {SOCKS_PROXY_OUT}
    listed = runner.invoke(app, ["accounts", "list", "--json"], env=env)
    assert json.loads(listed.output.splitlines()[0])["egress"].startswith("socks5h://")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://ann:pw-123456@proxy:21", "scheme ftp:// is not one of"),
        ("socks5://ann:pw-123456@proxy", "needs a port"),
        ("http://ann:pw-123456@proxy:3128/path", "nothing after"),
        ("socks5h://ann:pw-123456@:1080", "names no host"),
    ],
)
def test_a_proxy_url_that_cannot_work_is_refused_without_echoing_it(
    tmp_path: Path, url: str, says: str
) -> None:
    env = {"QUOTAPOOL_HOME": str(tmp_path), "P": url}
    folder = tmp_path / "none"
    folder.mkdir()
    for command in (
        ["accounts", "set-proxy", "someone", url],
        ["accounts", "import", str(folder), "--proxy-env", "P"],
    ):
        result = runner.invoke(app, command, env=env)
        assert result.exit_code != 0 and says in result.output, result.output
        assert "pw-123456" not in result.output
