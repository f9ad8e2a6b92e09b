"""What happened when a credential was used: the only input that changes pool state."""

from __future__ import annotations

from dataclasses import dataclass

from quotapool.domain.quota import QuotaReading
from quotapool.domain.state import Status


@dataclass(frozen=True, slots=True)
class Started:
    """A request was sent to the credential: one more in flight and, unless `rotation` is
    None (a probe, a warmup), a selection counted toward that rotation."""

    credential_id: str
    at: float
    rotation: str | None = ""
    """The round-robin counter the selection counts toward."""
    catch_up: float = 0.0
    """The counter is first raised to this (a returning credential rejoins the rotation at
    its current position instead of catching up in a burst)."""


@dataclass(frozen=True, slots=True)
class Served:
    """The upstream answered; the credential is healthy."""

    credential_id: str
    at: float
    quota: QuotaReading | None = None
    model: str = ""
    ttfb_ms: float | None = None
    """Upstream time to first byte; feeds least_latency (never 0 for a proxied request)."""
    gated: bool = False
    """Served from an additional quota: says nothing about the standard windows' limit."""


@dataclass(frozen=True, slots=True)
class Limited:
    """The upstream said the credential is out (429, quota errors) until `until`."""

    credential_id: str
    at: float
    status: Status
    until: float
    reason: str
    quota: QuotaReading | None = None
    model: str | None = None
    """Set when only this model is limited (a gated model's own quota): a model cooldown."""
    ends: bool = True
    """The request it answered ends with it (False: learned from a frame of a WebSocket
    session that goes on, still in flight)."""


@dataclass(frozen=True, slots=True)
class Failed:
    """5xx, auth failure, connection error or timeout: counts toward error backoff."""

    credential_id: str
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class Abandoned:
    """The request or session ended without a verdict on the credential's health (the client
    went away, a WebSocket session closed)."""

    credential_id: str
    at: float


@dataclass(frozen=True, slots=True)
class StatusSet:
    """An operator paused, resumed or deactivated the credential."""

    credential_id: str
    at: float
    status: Status
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Observed:
    """Headroom learned outside a request (the usage poller, a stream's rate-limit event)."""

    credential_id: str
    at: float
    quota: QuotaReading
    source: str = "poll"
    """Where it was read: "poll" (wham/usage) or "stream" (a codex.rate_limits event)."""


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The credential's token was renewed: auth failures are forgiven."""

    credential_id: str
    at: float


@dataclass(frozen=True, slots=True)
class BusyElsewhere:
    """How many requests other replicas have in flight on the credential, as they last said
    (they say it every fraction of a second; a replica that dies stops counting)."""

    credential_id: str
    at: float
    count: int


Outcome = (
    Started
    | Served
    | Limited
    | Failed
    | Abandoned
    | StatusSet
    | Observed
    | Refreshed
    | BusyElsewhere
)
