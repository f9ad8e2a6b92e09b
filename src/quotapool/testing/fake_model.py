"""The fake upstream's accounts and the failures they can be scripted with."""

from __future__ import annotations

import base64
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from quotapool.clock import Clock, SystemClock


@dataclass
class Failure:
    """One scripted failure: an HTTP error, or an error as the first stream event."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    in_stream: bool = False
    """Answer 200 and send the error as the first SSE event instead."""


def usage_limit(resets_at: float, plan: str = "plus", now: float | None = None) -> Failure:
    """The Codex 429 an exhausted ChatGPT account answers (at `now`: by default, the clock's)."""
    seconds = max(0, int(resets_at - (time.time() if now is None else now)))
    body = {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": plan,
            "resets_at": int(resets_at),
            "resets_in_seconds": seconds,
        }
    }
    return Failure(429, body)


def rate_limited(retry_after: int = 20) -> Failure:
    body = {
        "error": {
            "type": "rate_limit_exceeded",
            "message": "Rate limit reached",
            "code": "rate_limit_exceeded",
        }
    }
    return Failure(429, body, {"retry-after": str(retry_after)})


def claude_limit(resets_at: float, claim: str = "five_hour") -> Failure:
    """The 429 a Claude subscription answers when a window of its plan is spent."""
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "This request would exceed your account's rate limit. Please try again later.",
        },
    }
    headers = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": str(int(resets_at)),
        "anthropic-ratelimit-unified-representative-claim": claim,
        "anthropic-ratelimit-unified-5h-status": "rejected" if claim == "five_hour" else "allowed",
    }
    return Failure(429, body, headers)


def server_error(status: int = 500) -> Failure:
    return Failure(
        status, {"error": {"type": "server_error", "message": "The server had an error"}}
    )


@dataclass
class Account:
    """How one credential (token or key) behaves."""

    name: str
    token: str
    account_id: str | None = None
    primary_used: float = 12.0
    secondary_used: float = 30.0
    latency: float = 0.0
    """Seconds before the response starts."""
    event_delay: float = 0.0
    """Seconds between stream events."""
    deltas: int = 5
    """How many text deltas a streamed answer has."""
    break_after: int | None = None
    """Close the connection after this many stream events."""
    failures: deque[Failure] = field(default_factory=deque)
    always: Failure | None = None
    """A failure answered to every request until cleared."""
    served: int = 0
    tool_call: tuple[str, str] | None = None
    """Answer the next request offering this tool (name, JSON arguments) with a call to it."""
    ws_refuse: int | None = None
    """Refuse WebSocket upgrades with this HTTP status (426: no WebSocket; 429: limited)."""
    response_ids: set[str] = field(default_factory=set)
    """Responses this account produced (only it can continue them)."""
    refreshes: int = 0
    refresh_error: str | None = None
    """Answer refresh requests with this OAuth error (e.g. "invalid_grant")."""
    refresh_delay: float = 0.0
    usage_status: int = 200
    """Status `/wham/usage` answers for this account."""
    usage_polls: int = 0
    clock: Clock = field(default_factory=SystemClock)
    windows_start: float = field(default_factory=time.time)
    """Its quota windows reset at fixed times from here (as the real ones do), so a reading
    repeated later is the same reading."""
    models: tuple[str, ...] = ("gpt-5.5", "gpt-5.4", "gpt-5.4-mini", "gpt-5.3-codex")
    """What its `/codex/models` lists (a Codex account's plan decides it)."""
    aborted: int = 0
    """Streams the client (quotapool) walked away from."""
    gated_used: float | None = None
    """Use of the account's additional limit (GATED_LIMIT, for GATED_MODELS); None: none."""
    claude: bool = False
    """A Claude subscription: its token is an OAuth token (a bearer with the OAuth beta flag,
    never `x-api-key`), its quota the unified 5-hour and 7-day windows."""
    standard_spent_until: float | None = None
    """The standard windows are spent until then: every model but the gated ones gets
    `usage_limit_reached` (as the Codex backend answers an account out of its 5 h quota)."""

    def fail_next(self, *failures: Failure) -> None:
        self.failures.extend(failures)

    def next_failure(self, model: str | None = None) -> Failure | None:
        if self.failures:
            return self.failures.popleft()
        spent = self.standard_spent_until
        if spent is not None and self.clock.now() < spent and model not in GATED_MODELS:
            return usage_limit(spent)
        return self.always

    @property
    def text(self) -> str:
        return f"Hi from {self.name}!"


@dataclass
class Seen:
    """A request the fake received (for assertions)."""

    path: str
    account: str | None
    model: str | None
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes = b""
    """The body (or WebSocket message) exactly as it arrived."""
    query: str = ""


AUTH = "https://api.openai.com/auth"
GATED_LIMIT = ("codex_bengalfox", "GPT-5.3-Codex-Spark")
"""An additional limit as the Codex backend names it: metered feature id, limit name."""
GATED_MODELS = frozenset({"gpt-5.3-codex-spark"})
"""Models served from GATED_LIMIT instead of the standard windows."""


def expired(token: str, now: float) -> bool:
    try:
        payload = token.split(".")[1]
        exp = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("exp")
    except (ValueError, orjson.JSONDecodeError):
        return False
    return isinstance(exp, int | float) and exp < now


def fake_jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token (unsigned: quotapool reads claims, the real upstream verifies)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.{part({'sig': 'fake'})}"
