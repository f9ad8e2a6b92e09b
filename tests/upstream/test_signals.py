"""Quota signals: durations, Retry-After, Codex headers, error classification."""

from __future__ import annotations

import orjson
import pytest
from multidict import CIMultiDict

from quotapool.domain.quota import Credits, QuotaWindow
from quotapool.domain.state import Status
from quotapool.upstream.signals import (
    classify_error,
    parse_anthropic_headers,
    parse_codex_headers,
    parse_duration,
    parse_openai_headers,
    parse_rate_limits_event,
    parse_retry_after,
    parse_wham_usage,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6ms", 0.006),
        ("20s", 20.0),
        ("1m30s", 90.0),
        ("2h0m5s", 7205.0),
        ("1.5", 1.5),
        ("soon", None),
        ("5x", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("7", NOW) == NOW + 7
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", NOW) == 1792567680.0
    assert parse_retry_after("garbage", NOW) is None and parse_retry_after(None, NOW) is None


def test_codex_headers() -> None:
    reading = parse_codex_headers(
        {
            "x-codex-primary-used-percent": "42.5",
            "x-codex-primary-window-minutes": "300",
            "x-codex-primary-reset-at": str(int(NOW) + 60),
            "x-codex-secondary-used-percent": "10",
            "x-codex-secondary-reset-after-seconds": "3600",
        },
        NOW,
    )
    assert reading is not None
    assert reading.primary == QuotaWindow(42.5, NOW + 60, 300)
    assert reading.secondary == QuotaWindow(10.0, NOW + 3600, None)
    assert parse_codex_headers({}, NOW) is None


def body(**error: object) -> bytes:
    return orjson.dumps({"error": error})


@pytest.mark.parametrize(
    ("status", "headers", "payload", "failover", "state", "until"),
    [
        (
            429,
            {},
            body(type="usage_limit_reached", resets_at=NOW + 900),
            True,
            Status.QUOTA_EXCEEDED,
            NOW + 900,
        ),
        (
            429,
            {},
            body(type="usage_limit_reached", resets_in_seconds=120),
            True,
            Status.QUOTA_EXCEEDED,
            NOW + 120,
        ),
        (
            429,
            {"retry-after": "3"},
            body(type="rate_limit_exceeded"),
            True,
            Status.RATE_LIMITED,
            NOW + 3,
        ),
        (429, {"x-ratelimit-reset-requests": "1m"}, b"", True, Status.RATE_LIMITED, NOW + 60),
        (
            429,
            {"anthropic-ratelimit-tokens-reset": "2027-01-15T08:00:30Z"},
            b"",
            True,
            Status.RATE_LIMITED,
            1800000030.0,
        ),
        (429, {}, b"not json", True, Status.RATE_LIMITED, NOW + 30),
        (429, {}, body(type="insufficient_quota"), True, Status.QUOTA_EXCEEDED, NOW + 3600),
        (429, {}, body(code="usage_not_included"), True, Status.QUOTA_EXCEEDED, NOW + 3600),
        (429, {"retry-after": "0"}, b"", True, Status.RATE_LIMITED, NOW + 1),
        (500, {}, b"", True, None, None),
        (503, {}, b"", True, None, None),
        (401, {}, b"", True, None, None),
        (400, {}, body(type="invalid_request_error"), False, None, None),
        (404, {}, b"", False, None, None),
    ],
)
def test_classify_error(
    status: int,
    headers: dict[str, str],
    payload: bytes,
    failover: bool,
    state: Status | None,
    until: float | None,
) -> None:
    verdict = classify_error(status, headers, payload, NOW)
    assert verdict.failover is failover
    assert verdict.status is state
    assert verdict.until == (pytest.approx(until) if until is not None else None)


def test_codex_credits() -> None:
    reading = parse_codex_headers(
        {
            "x-codex-credits-has-credits": "True",
            "x-codex-credits-unlimited": "false",
            "x-codex-credits-balance": "12.5",
        },
        NOW,
    )
    assert reading is not None and reading.credits == Credits(True, False, 12.5)


def test_openai_rate_limits_become_the_busiest_window() -> None:
    reading = parse_openai_headers(
        {
            "x-ratelimit-limit-requests": "100",
            "x-ratelimit-remaining-requests": "90",
            "x-ratelimit-reset-requests": "6s",
            "x-ratelimit-limit-tokens": "1000",
            "x-ratelimit-remaining-tokens": "250",
            "x-ratelimit-reset-tokens": "1m30s",
        },
        NOW,
    )
    assert reading is not None and reading.primary == QuotaWindow(75.0, NOW + 90)
    assert parse_openai_headers({"x-ratelimit-limit-requests": "0"}, NOW) is None


def test_anthropic_limits_and_unified_windows() -> None:
    reading = parse_anthropic_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "40",
            "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:30Z",
            "anthropic-ratelimit-unified-5h-utilization": "0.42",
            "anthropic-ratelimit-unified-5h-reset": str(int(NOW) + 100),
            "anthropic-ratelimit-unified-7d-utilization": "0.9",
            "anthropic-ratelimit-unified-7d-reset": str(int(NOW) + 5000),
        },
        NOW,
    )
    assert reading is not None
    assert reading.primary == QuotaWindow(42.0, NOW + 100, 300)
    assert reading.secondary == QuotaWindow(90.0, NOW + 5000, 10080)
    plain = parse_anthropic_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "40",
        },
        NOW,
    )
    assert (
        plain is not None and plain.primary == QuotaWindow(20.0, None) and plain.secondary is None
    )


def test_wham_usage() -> None:
    payload = {
        "plan_type": "plus",
        "rate_limit": {
            "primary_window": {
                "used_percent": 12,
                "limit_window_seconds": 18000,
                "reset_after_seconds": 60,
            },
            "secondary_window": {
                "used_percent": 30.5,
                "limit_window_seconds": 604800,
                "reset_at": NOW + 999,
            },
        },
        "credits": {"has_credits": False, "unlimited": False, "balance": "0"},
    }
    reading = parse_wham_usage(payload, NOW)
    assert reading is not None
    assert reading.primary == QuotaWindow(12.0, NOW + 60, 300)
    assert reading.secondary == QuotaWindow(30.5, NOW + 999, 10080)
    assert reading.credits == Credits(False, False, 0.0)
    assert parse_wham_usage({"detail": "nope"}, NOW) is None


def test_codex_rate_limits_event() -> None:
    event = {
        "type": "codex.rate_limits",
        "rate_limits": {
            "primary": {"used_percent": 99, "window_minutes": 300, "resets_in_seconds": 30}
        },
    }
    reading = parse_rate_limits_event(event, NOW)
    assert (
        reading is not None
        and reading.primary == QuotaWindow(99.0, NOW + 30, 300)
        and reading.secondary is None
    )
    assert parse_rate_limits_event({"type": "codex.rate_limits"}, NOW) is None


def test_additional_limits_are_read_from_headers_events_and_usage() -> None:
    headers = CIMultiDict(  # as the upstream client gives them: any case
        {
            "x-codex-primary-used-percent": "12",
            "X-Codex-Bengalfox-Primary-Used-Percent": "64",
            "x-codex-bengalfox-primary-reset-at": str(int(NOW) + 60),
            "x-codex-bengalfox-secondary-used-percent": "7",
            "x-codex-bengalfox-limit-name": "GPT-5.3-Codex-Spark",
        }
    )
    reading = parse_codex_headers(headers, NOW)
    assert reading is not None and reading.primary is not None
    spark = reading.additional["codex_bengalfox"]
    assert reading.additional["gpt_5.3_codex_spark"] is spark  # by id or by name
    assert spark.primary == QuotaWindow(64.0, NOW + 60, None) and spark.secondary is not None
    event = {
        "type": "codex.rate_limits",
        "metered_limit_name": "codex_bengalfox",
        "rate_limits": {"primary": {"used_percent": 70, "resets_in_seconds": 30}},
    }
    streamed = parse_rate_limits_event(event, NOW)
    assert streamed is not None and streamed.primary is None
    assert streamed.additional["codex_bengalfox"].primary == QuotaWindow(70.0, NOW + 30, None)
    usage = {
        "rate_limit": {"primary_window": {"used_percent": 5}},
        "additional_rate_limits": [
            {
                "limit_name": "GPT-5.3-Codex-Spark",
                "metered_feature": "codex_bengalfox",
                "rate_limit": {"primary_window": {"used_percent": 99, "reset_at": NOW + 9}},
            },
            {"limit_name": "broken", "rate_limit": "nope"},
        ],
    }
    polled = parse_wham_usage(usage, NOW)
    assert polled is not None
    assert polled.additional["gpt_5.3_codex_spark"].primary == QuotaWindow(99.0, NOW + 9, None)
    assert "broken" not in polled.additional
