"""Proxy URLs: what is accepted, and what may be shown of them (never the password)."""

from __future__ import annotations

import pytest

from quotapool.domain.egress import DIRECT, EgressConfigError, parse_egress


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("direct", "direct"),
        (" DIRECT ", "direct"),
        ("http://proxy.corp:3128", "http://proxy.corp:3128"),
        ("http://proxy.corp", "http://proxy.corp:80"),
        ("https://ann:pw-1@proxy.corp", "https://proxy.corp:443"),
        ("socks5h://ann:pw-1@10.0.0.7:1080", "socks5h://10.0.0.7:1080"),
        ("SOCKS5://[::1]:1080", "socks5://[::1]:1080"),
        ("socks4://10.0.0.7:1080/", "socks4://10.0.0.7:1080"),
    ],
)
def test_a_proxy_url_is_shown_by_scheme_host_and_port(url: str, label: str) -> None:
    egress = parse_egress(url)
    assert egress.label == label
    assert "pw-1" not in repr(egress)


def test_direct_is_no_proxy_and_a_password_is_known_for_redaction() -> None:
    assert parse_egress("direct") is DIRECT and DIRECT.url is None and DIRECT.password is None
    assert parse_egress("socks5h://ann:pw-secret@h:1080").password == "pw-secret"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h:21",
        "h:1080",
        "socks5://h",
        "socks5h://:1080",
        "http://h:port",
        "http://h:3128/path",
        "http://h:3128?x=1",
    ],
)
def test_a_proxy_url_that_cannot_work_is_refused(url: str) -> None:
    with pytest.raises(EgressConfigError):
        parse_egress(url)
