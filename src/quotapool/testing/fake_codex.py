"""What the fake upstream's accounts say, as the real services say it: quota headers, the
Codex backend's usage report and its WebSocket frames (pure: the time is given)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from quotapool.testing import events
from quotapool.testing.fake_model import GATED_LIMIT, GATED_MODELS, Account


def quota_headers(account: Account, kind: str, now: float) -> dict[str, str]:
    """The headers an answer of `kind` ("codex", "anthropic", else OpenAI) carries."""
    start = int(account.windows_start)
    if kind == "codex":
        headers = {
            "x-codex-primary-used-percent": f"{account.primary_used:g}",
            "x-codex-primary-window-minutes": "300",
            "x-codex-primary-reset-at": str(start + 3600),
            "x-codex-secondary-used-percent": f"{account.secondary_used:g}",
            "x-codex-secondary-window-minutes": "10080",
            "x-codex-secondary-reset-at": str(start + 86400 * 3),
        }
        if account.gated_used is not None:
            prefix = "x-" + GATED_LIMIT[0].replace("_", "-")
            headers[f"{prefix}-primary-used-percent"] = f"{account.gated_used:g}"
            headers[f"{prefix}-primary-window-minutes"] = "300"
            headers[f"{prefix}-primary-reset-at"] = str(int(now) + 5400)
            headers[f"{prefix}-limit-name"] = GATED_LIMIT[1]
        return headers
    if kind == "anthropic" and account.claude:
        return {
            "anthropic-ratelimit-unified-status": "allowed",
            "anthropic-ratelimit-unified-5h-status": "allowed",
            "anthropic-ratelimit-unified-5h-utilization": f"{account.primary_used / 100:g}",
            "anthropic-ratelimit-unified-5h-reset": str(start + 3600),
            "anthropic-ratelimit-unified-7d-status": "allowed",
            "anthropic-ratelimit-unified-7d-utilization": f"{account.secondary_used / 100:g}",
            "anthropic-ratelimit-unified-7d-reset": str(start + 86400 * 3),
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
        }
    if kind == "anthropic":
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(now) + 60))
        return {
            "anthropic-ratelimit-requests-limit": "1000",
            "anthropic-ratelimit-requests-remaining": "999",
            "anthropic-ratelimit-requests-reset": reset,
        }
    return {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
    }


def wham_usage(account: Account, now: float) -> dict[str, Any]:
    """`GET /backend-api/wham/usage`: the account's windows and additional limits."""
    start = int(account.windows_start)
    window = {
        "limit_window_seconds": 18000,
        "reset_after_seconds": start + 3600 - int(now),
        "reset_at": start + 3600,
    }
    weekly = {
        "limit_window_seconds": 604800,
        "reset_after_seconds": start + 259200 - int(now),
        "reset_at": start + 259200,
    }
    usage: dict[str, Any] = {
        "plan_type": "plus",
        "rate_limit": {
            "allowed": True,
            "limit_reached": False,
            "primary_window": {"used_percent": account.primary_used, **window},
            "secondary_window": {"used_percent": account.secondary_used, **weekly},
        },
    }
    if account.gated_used is not None:
        usage["additional_rate_limits"] = [
            {
                "limit_name": GATED_LIMIT[1],
                "metered_feature": GATED_LIMIT[0],
                "rate_limit": {
                    "allowed": account.gated_used < 100,
                    "limit_reached": account.gated_used >= 100,
                    "primary_window": {"used_percent": account.gated_used, **window},
                },
            }
        ]
    return usage


def scripted(account: Account, body: dict[str, Any]) -> dict[str, Any]:
    """The body as the fake answers it: a scripted tool call forces that tool once."""
    if account.tool_call is None or body.get("generate") is False:
        return body
    name, arguments = account.tool_call
    tool = next(
        (
            t
            for t in body.get("tools") or []
            if name in (t.get("name"), (t.get("function") or {}).get("name"))
        ),
        None,
    )
    if tool is None:
        return body
    account.tool_call = None
    anthropic = "input_schema" in tool
    return {
        **body,
        "tools": [tool],
        "tool_choice": {"type": "tool", "name": name} if anthropic else "required",
        events.CALL_ARGUMENTS: arguments,
    }


def with_gated_limits(account: Account, body: dict[str, Any], frames: list[bytes]) -> None:
    """A stream of a gated model carries its additional limit (`codex.rate_limits`)."""
    if body.get("model") not in GATED_MODELS or account.gated_used is None:
        return
    event = {
        "type": "codex.rate_limits",
        "metered_limit_name": GATED_LIMIT[0],
        "limit_name": GATED_LIMIT[1],
        "rate_limits": {
            "primary": {
                "used_percent": account.gated_used,
                "window_minutes": 300,
                "resets_in_seconds": 5400,
            }
        },
    }
    frames.insert(1, events.sse(event, "codex.rate_limits"))


def ws_frames(account: Account, body: dict[str, Any]) -> list[str]:
    """The frames a Codex socket answers one `response.create` with."""
    previous = body.get("previous_response_id")
    if previous and previous not in account.response_ids:
        error = {
            "type": "invalid_request_error",
            "code": "previous_response_not_found",
            "message": f"Previous response with id '{previous}' not found.",
        }
        return [orjson.dumps({"type": "error", "status": 400, "error": error}).decode()]
    if (failure := account.next_failure(body.get("model"))) is not None:
        error = failure.body.get("error", failure.body)
        return [orjson.dumps({"type": "error", "status": failure.status, "error": error}).decode()]
    text = "" if body.get("generate") is False else account.text
    frames = events.responses_stream(scripted(account, body), text, account.deltas if text else 0)
    with_gated_limits(account, body, frames)
    payloads = [frame.split(b"data: ", 1)[1].strip() for frame in frames]
    if body.get("generate") is False:  # prewarm: created and completed, no output
        payloads = [payloads[0], payloads[-1]]
    created = orjson.loads(payloads[0])
    account.response_ids.add(created["response"]["id"])
    return [p.decode() for p in payloads]
