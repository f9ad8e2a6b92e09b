"""Quota signals from upstream headers and error bodies, parsed into domain values. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any

import orjson

from quotapool.domain.outcome import Failed, Limited
from quotapool.domain.quota import AdditionalQuota, Credits, QuotaReading, QuotaWindow, limit_key
from quotapool.domain.state import Status

MIN_LIMIT_SECONDS = 1.0
"""A limit always lasts at least this long, so a bad hint cannot cause a retry storm."""
DEFAULT_RATE_LIMIT_SECONDS = 30.0
DEFAULT_QUOTA_SECONDS = 3600.0

QUOTA_ERRORS = frozenset(
    {"insufficient_quota", "usage_not_included", "quota_exceeded", "usage_limit_reached"}
)
"""Errors that mean a quota is spent (until its reset), not a short rate limit. A Codex
`usage_limit_reached` is how a standard window usually runs out: a model served from an
additional quota may still use that account."""
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def parse_duration(text: str) -> float | None:
    """OpenAI reset durations: `6ms`, `20s`, `1m30s`, `2h0m5s`; plain numbers are seconds."""
    if (plain := _float(text)) is not None:
        return plain
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds or an HTTP date, returned as an epoch time."""
    if not value:
        return None
    if (seconds := _float(value)) is not None:
        return now + max(seconds, 0.0)
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _rfc3339(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _codex_window(
    headers: Mapping[str, str], which: str, now: float, prefix: str = "x-codex"
) -> QuotaWindow | None:
    used = _float(headers.get(f"{prefix}-{which}-used-percent"))
    if used is None:
        return None
    resets_at = _float(headers.get(f"{prefix}-{which}-reset-at"))
    if resets_at is None and (
        after := _float(headers.get(f"{prefix}-{which}-reset-after-seconds"))
    ):
        resets_at = now + after
    minutes = _float(headers.get(f"{prefix}-{which}-window-minutes"))
    return QuotaWindow(used, resets_at, int(minutes) if minutes is not None else None)


def additional_limit(
    limit_id: str, name: str | None, primary: QuotaWindow | None, secondary: QuotaWindow | None
) -> dict[str, AdditionalQuota]:
    """One additional limit, found by the key of its id and of its name."""
    quota = AdditionalQuota(name or limit_id, primary, secondary)
    return {limit_key(limit_id): quota, limit_key(name or limit_id): quota}


_PRIMARY_USED = "-primary-used-percent"


def _additional_headers(headers: Mapping[str, str], now: float) -> dict[str, AdditionalQuota]:
    """`x-<limit id>-primary-*` / `-secondary-*` and `x-<limit id>-limit-name` for each
    additional limit (e.g. `x-codex-bengalfox-primary-used-percent`, "GPT-5.3-Codex-Spark")."""
    found: dict[str, AdditionalQuota] = {}
    names = "\n".join(headers.keys()).lower()  # one pass in C instead of one per header
    if names.count(_PRIMARY_USED) <= ("x-codex-primary-used-percent" in names):
        return found  # only the standard window, as nearly every response
    for raw in headers:
        name = raw.lower()
        if not name.endswith(_PRIMARY_USED) or name == "x-codex-primary-used-percent":
            continue
        prefix = name[: -len(_PRIMARY_USED)]
        if not prefix.startswith("x-"):
            continue
        found.update(
            additional_limit(
                prefix[2:],
                headers.get(f"{prefix}-limit-name"),
                _codex_window(headers, "primary", now, prefix),
                _codex_window(headers, "secondary", now, prefix),
            )
        )
    return found


def _credits(headers: Mapping[str, str]) -> Credits | None:
    has = headers.get("x-codex-credits-has-credits")
    if has is None:
        return None
    unlimited = headers.get("x-codex-credits-unlimited", "").lower() == "true"
    return Credits(has.lower() == "true", unlimited, _float(headers.get("x-codex-credits-balance")))


def parse_codex_headers(headers: Mapping[str, str], now: float) -> QuotaReading | None:
    """`x-codex-primary-*` (5 h) and `x-codex-secondary-*` (weekly) windows, and credits."""
    primary = _codex_window(headers, "primary", now)
    secondary = _codex_window(headers, "secondary", now)
    credits = _credits(headers)
    additional = _additional_headers(headers, now)
    if primary is None and secondary is None and credits is None and not additional:
        return None
    return QuotaReading(primary, secondary, additional, credits)


def _remaining_window(
    limit: str | None, remaining: str | None, resets_at: float | None
) -> QuotaWindow | None:
    total, left = _float(limit), _float(remaining)
    if not total or left is None:
        return None
    return QuotaWindow(max(0.0, 100.0 * (total - left) / total), resets_at)


def _most_used(*windows: QuotaWindow | None) -> QuotaWindow | None:
    known = [w for w in windows if w is not None]
    return max(known, key=lambda w: w.used_percent) if known else None


_OPENAI_LIMITS = tuple(
    (f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}")
    for kind in ("requests", "tokens")
)


def parse_openai_headers(headers: Mapping[str, str], now: float) -> QuotaReading | None:
    """`x-ratelimit-{limit,remaining,reset}-{requests,tokens}` as the key's busiest window."""
    busiest: QuotaWindow | None = None
    for limit, remaining, reset in _OPENAI_LIMITS:
        if (total := headers.get(limit)) is None:
            continue
        after = parse_duration(raw) if (raw := headers.get(reset)) else None
        window = _remaining_window(
            total, headers.get(remaining), now + after if after is not None else None
        )
        if window is not None and (busiest is None or window.used_percent > busiest.used_percent):
            busiest = window
    return QuotaReading(busiest) if busiest is not None else None


def parse_anthropic_headers(headers: Mapping[str, str], now: float) -> QuotaReading | None:
    """`anthropic-ratelimit-*` limits; the unified 5 h / 7 d utilization of subscriptions."""
    windows = [
        _remaining_window(
            headers.get(f"anthropic-ratelimit-{kind}-limit"),
            headers.get(f"anthropic-ratelimit-{kind}-remaining"),
            _rfc3339(headers.get(f"anthropic-ratelimit-{kind}-reset")),
        )
        for kind in ("requests", "tokens", "input-tokens", "output-tokens")
    ]
    unified = []
    for window, minutes in (("5h", 300), ("7d", 10080)):
        used = _float(headers.get(f"anthropic-ratelimit-unified-{window}-utilization"))
        reset = _float(headers.get(f"anthropic-ratelimit-unified-{window}-reset"))
        if reset is None:
            reset = _rfc3339(headers.get(f"anthropic-ratelimit-unified-{window}-reset"))
        percent = None if used is None else used * 100.0 if used <= 1.0 else used
        unified.append(QuotaWindow(percent, reset, minutes) if percent is not None else None)
    primary = _most_used(unified[0], *windows)
    secondary = unified[1]
    if primary is None and secondary is None:
        return None
    return QuotaReading(primary, secondary)


def _header_reset(headers: Mapping[str, str], now: float) -> float | None:
    """The latest reset any rate-limit header announces (the one that frees the credential)."""
    times: list[float] = []
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        if (value := headers.get(name)) and (seconds := parse_duration(value)) is not None:
            times.append(now + seconds)
    for name in (
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-reset",
        "anthropic-ratelimit-output-tokens-reset",
    ):
        if (at := _rfc3339(headers.get(name))) is not None:
            times.append(at)
    return max(times) if times else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """How to treat an upstream error for the credential that received it."""

    failover: bool
    """Try another credential (the client has seen nothing yet)."""
    status: Status | None = None
    """Set when the credential is out of quota or rate limited until `until`."""
    until: float | None = None
    reason: str = ""
    model_only: bool = False
    """The limit is the requested model's own (a Claude subscription's weekly Opus or Sonnet
    limit): only that model cools down."""

    def outcome(
        self,
        credential_id: str,
        now: float,
        quota: QuotaReading | None = None,
        gated_model: str | None = None,
        asked: str | None = None,
    ) -> Limited | Failed:
        """What the credential's failure does to the pool: limited until a reset (a gated
        model's limit, or a limit of the `asked` model only, cools down only that model), or a
        failure that backs it off."""
        if self.status is not None and self.until is not None:
            model = gated_model or (asked if self.model_only else None)
            return Limited(credential_id, now, self.status, self.until, self.reason, quota, model)
        return Failed(credential_id, now, self.reason)


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(data, dict) and isinstance(err := data.get("error"), dict):
        return err
    return {}


def _announced_reset(
    err: Mapping[str, Any], headers: Mapping[str, str], now: float
) -> float | None:
    if isinstance(resets_at := err.get("resets_at"), int | float):
        return float(resets_at)
    if isinstance(resets_in := err.get("resets_in_seconds"), int | float):
        return now + float(resets_in)
    if (delay := _gemini_detail(err, "RetryInfo").get("retryDelay")) is not None:
        seconds = parse_duration(str(delay))  # the Gemini API: "38s", "0.5s"
        if seconds is not None:
            return now + seconds
    return parse_retry_after(headers.get("retry-after"), now) or _header_reset(headers, now)


def _gemini_detail(err: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The Gemini API's `google.rpc.<kind>` detail of an error (RetryInfo, QuotaFailure)."""
    for detail in err.get("details") or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith(f".{kind}"):
            return detail
    return {}


def _daily_quota(err: Mapping[str, Any]) -> bool:
    """A Gemini key's quota of the day is spent (not its per-minute rate)."""
    violations = _gemini_detail(err, "QuotaFailure").get("violations") or ()
    return any("PerDay" in str(v.get("quotaId", "")) for v in violations if isinstance(v, dict))


MODEL_CLAIMS = frozenset({"seven_day_opus", "seven_day_sonnet"})
"""Claude subscriptions' weekly limits of one model family: the rest of the plan still serves."""


def classify_error(status: int, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    """Decide what an upstream error means for the credential and the request.

    >>> classify_error(429, {"retry-after": "7"}, b"", now=100.0).until
    107.0
    """
    if status == 429 and headers.get("anthropic-ratelimit-unified-status") == "rejected":
        # A Claude subscription's window is spent: out until that window resets.
        claim = headers.get("anthropic-ratelimit-unified-representative-claim") or "plan"
        reset = _float(headers.get("anthropic-ratelimit-unified-reset"))
        until = max(
            reset if reset is not None else now + DEFAULT_QUOTA_SECONDS, now + MIN_LIMIT_SECONDS
        )
        per_model = claim in MODEL_CLAIMS
        return Verdict(True, Status.QUOTA_EXCEEDED, until, f"429 {claim} limit reached", per_model)
    if status in {429, 402}:
        err = _error_object(body)
        said = err.get("type") or err.get("status") or err.get("code")  # (Gemini: its status)
        kind = str(said or "rate_limited")
        quota = kind in QUOTA_ERRORS or status == 402 or _daily_quota(err)
        reset = _announced_reset(err, headers, now)
        default = DEFAULT_QUOTA_SECONDS if quota else DEFAULT_RATE_LIMIT_SECONDS
        until = max(reset if reset is not None else now + default, now + MIN_LIMIT_SECONDS)
        limited = Status.QUOTA_EXCEEDED if quota else Status.RATE_LIMITED
        return Verdict(True, limited, until, f"{status} {kind}")
    if status in (401, 403) or (status == 400 and b"API_KEY_INVALID" in body):
        return Verdict(True, reason=f"{status} credential rejected by upstream")
    if status >= 500:
        return Verdict(True, reason=f"upstream {status}")
    return Verdict(False)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _json_window(window: Any, now: float) -> QuotaWindow | None:
    """A window object from wham/usage (`reset_at`, `limit_window_seconds`) or from a
    `codex.rate_limits` event (`resets_at`, `resets_in_seconds`, `window_minutes`)."""
    if not isinstance(window, dict) or (used := _number(window.get("used_percent"))) is None:
        return None
    resets_at = _number(window.get("reset_at", window.get("resets_at")))
    if resets_at is None:
        after = _number(window.get("reset_after_seconds", window.get("resets_in_seconds")))
        resets_at = now + after if after is not None else None
    minutes = _number(window.get("window_minutes"))
    if minutes is None and (seconds := _number(window.get("limit_window_seconds"))) is not None:
        minutes = seconds // 60
    return QuotaWindow(used, resets_at, int(minutes) if minutes is not None else None)


def parse_claude_usage(payload: Any, now: float) -> QuotaReading | None:
    """`GET /api/oauth/usage` of a Claude subscription: its 5-hour and 7-day windows.

    >>> reading = parse_claude_usage(
    ...     {"five_hour": {"utilization": 61.0, "resets_at": "2026-01-28T07:59:59+00:00"},
    ...      "seven_day": {"utilization": 22.0, "resets_at": None}}, now=0.0)
    >>> reading.primary.used_percent, reading.primary.window_minutes, reading.secondary.resets_at
    (61.0, 300, None)
    """
    if not isinstance(payload, dict):
        return None
    windows: list[QuotaWindow | None] = []
    for name, minutes in (("five_hour", 300), ("seven_day", 10080)):
        window = payload.get(name)
        used = _number(window.get("utilization")) if isinstance(window, dict) else None
        if not isinstance(window, dict) or used is None:
            windows.append(None)
            continue
        reset = window.get("resets_at")
        resets_at = _rfc3339(reset) if isinstance(reset, str) else None
        windows.append(QuotaWindow(used, resets_at, minutes))
    if windows[0] is None and windows[1] is None:
        return None
    return QuotaReading(windows[0], windows[1])


def parse_wham_usage(payload: Any, now: float) -> QuotaReading | None:
    """`GET /backend-api/wham/usage`: the account's 5-hour and weekly windows, and credits."""
    if not isinstance(payload, dict) or not isinstance(limits := payload.get("rate_limit"), dict):
        return None
    primary = _json_window(limits.get("primary_window"), now)
    secondary = _json_window(limits.get("secondary_window"), now)
    credits = None
    if isinstance(raw := payload.get("credits"), dict) and "has_credits" in raw:
        balance = raw.get("balance")
        amount = _float(str(balance)) if balance is not None else None
        credits = Credits(bool(raw["has_credits"]), bool(raw.get("unlimited")), amount)
    additional: dict[str, AdditionalQuota] = {}
    extras = payload.get("additional_rate_limits")
    for extra in extras if isinstance(extras, list) else ():
        if not isinstance(extra, dict) or not isinstance(inner := extra.get("rate_limit"), dict):
            continue
        limit_id, name = extra.get("metered_feature"), extra.get("limit_name")
        if not isinstance(limit_id, str) or not limit_id:
            limit_id = name
        if isinstance(limit_id, str) and limit_id:
            additional.update(
                additional_limit(
                    limit_id,
                    name if isinstance(name, str) else None,
                    _json_window(inner.get("primary_window"), now),
                    _json_window(inner.get("secondary_window"), now),
                )
            )
    if primary is None and secondary is None and credits is None and not additional:
        return None
    return QuotaReading(primary, secondary, additional, credits)


def parse_rate_limits_event(payload: Any, now: float) -> QuotaReading | None:
    """A `codex.rate_limits` stream event: `{"rate_limits": {"primary": {…}, "secondary": {…}}}`;
    with `metered_limit_name` (and `limit_name`) other than "codex", an additional limit's."""
    if not isinstance(payload, dict):
        return None
    limits = payload.get("rate_limits", payload)
    if not isinstance(limits, dict):
        return None
    primary = _json_window(limits.get("primary"), now)
    secondary = _json_window(limits.get("secondary"), now)
    if primary is None and secondary is None:
        return None
    limit_id = _first_text(payload, limits, ("metered_limit_name", "limit_id"))
    if limit_id is None or limit_key(limit_id) == "codex":
        return QuotaReading(primary, secondary)
    name = _first_text(payload, limits, ("limit_name",))
    return QuotaReading(additional=additional_limit(limit_id, name, primary, secondary))


def _first_text(
    payload: dict[str, Any], inner: dict[str, Any], keys: tuple[str, ...]
) -> str | None:
    for source in (payload, inner):
        for key in keys:
            if isinstance(value := source.get(key), str) and value:
                return value
    return None


_RATE_CODES = QUOTA_ERRORS | {"usage_limit_reached", "rate_limit_exceeded", "rate_limit_error"}
_SERVER_CODES = frozenset({"server_error", "overloaded_error", "api_error", "internal_error"})


@dataclass(frozen=True, slots=True)
class StreamFailure:
    """A failure the upstream reported in its stream (an error or `response.failed` event)."""

    status: int
    body: bytes
    verdict: Verdict


def event_failure(payload: Any, now: float) -> StreamFailure | None:
    """A stream event that means the credential failed: a rate limit or an upstream error."""
    if not isinstance(payload, dict) or payload.get("type") not in ("error", "response.failed"):
        return None
    err = payload.get("error") or (payload.get("response") or {}).get("error") or {}
    if not isinstance(err, dict):
        return None
    code = err.get("type") or err.get("code")
    declared = payload.get("status")
    if code in _RATE_CODES or declared == 429:
        status = 429
    elif code in _SERVER_CODES or (isinstance(declared, int) and declared >= 500):
        status = 502
    else:
        return None
    body = orjson.dumps({"error": err})
    return StreamFailure(status, body, classify_error(status, {}, body, now))
