"""`GET /metrics` in the Prometheus text format.

Per request, only a few dict increments, from the same row the request log gets; everything
that describes the pool (quota, resets, in flight, statuses, the log writers) is read when
Prometheus scrapes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import QuotaWindow
from quotapool.store.batch import BatchWriter

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_TOKENS = (("input_tokens", "input"), ("output_tokens", "output"), ("cached_tokens", "cached"))


def error_kind(status: int) -> str:
    if status == 429:
        return "limited"
    if status in (401, 403):
        return "refused"
    if status == 499:
        return "client_gone"
    return "upstream" if status >= 500 else "client"


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(SECONDS_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(SECONDS_BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        cumulative, out = 0, []
        for bound, count in zip((*SECONDS_BUCKETS, float("inf")), self.counts, strict=True):
            cumulative += count
            out.append(("+Inf" if bound == float("inf") else f"{bound:g}", float(cumulative)))
        return out


class Metrics:
    """Implements prometheus-client's collector protocol (`collect`)."""

    def __init__(
        self,
        snapshot: Callable[[], PoolSnapshot],
        now: Callable[[], float],
        writers: Sequence[BatchWriter],
    ) -> None:
        self.snapshot = snapshot
        self.now = now
        self.writers = writers
        self.requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.failovers: defaultdict[str, int] = defaultdict(int)
        self.errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.ttfb: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.latency: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, row: Mapping[str, Any]) -> None:
        """One finished request (its request-log row)."""
        route, credential, status = row["route"], row["credential"] or "", row["status"]
        self.requests[(route, credential, str(status))] += 1
        if row["attempts"] > 1:
            self.failovers[route] += row["attempts"] - 1
        if status >= 400:
            self.errors[(route, error_kind(status))] += 1
        if (ttfb := row["ttfb_ms"]) is not None:
            self.ttfb[route].observe(ttfb / 1000.0)
        if (latency := row["latency_ms"]) is not None:
            self.latency[route].observe(latency / 1000.0)
        if row["input_tokens"] is not None:
            for field, kind in _TOKENS:
                self.tokens[(credential, kind)] += row[field] or 0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterable[Metric]:
        yield from self._traffic()
        yield from self._pool()
        yield from self._writers()

    def _traffic(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "quotapool_requests",
            "Client requests by route, credential and status",
            labels=["route", "credential", "status"],
        )
        for request_labels, count in self.requests.items():
            requests.add_metric(list(request_labels), count)
        tokens = CounterMetricFamily(
            "quotapool_tokens", "Tokens by credential and kind", labels=["credential", "kind"]
        )
        for token_labels, count in self.tokens.items():
            tokens.add_metric(list(token_labels), count)
        failovers = CounterMetricFamily(
            "quotapool_failovers", "Attempts moved to another credential", labels=["route"]
        )
        for route, count in self.failovers.items():
            failovers.add_metric([route], count)
        errors = CounterMetricFamily(
            "quotapool_errors", "Requests answered with an error, by kind", labels=["route", "kind"]
        )
        for error_labels, count in self.errors.items():
            errors.add_metric(list(error_labels), count)
        yield from (requests, tokens, failovers, errors)
        for name, doc, histograms in (
            ("quotapool_ttfb_seconds", "Time to the first byte of the answer", self.ttfb),
            ("quotapool_latency_seconds", "Time to the end of the answer", self.latency),
        ):
            family = HistogramMetricFamily(name, doc, labels=["route"])
            for route, histogram in histograms.items():
                family.add_metric([route], histogram.buckets(), histogram.total)
            yield family

    def _pool(self) -> Iterable[Metric]:
        snapshot, now = self.snapshot(), self.now()
        used = GaugeMetricFamily(
            "quotapool_quota_used_percent",
            "Quota used, by credential and window",
            labels=["credential", "window"],
        )
        reset = GaugeMetricFamily(
            "quotapool_quota_reset_seconds",
            "Seconds until the window resets",
            labels=["credential", "window"],
        )
        in_flight = GaugeMetricFamily(
            "quotapool_in_flight", "Requests in flight", labels=["credential"]
        )
        status = GaugeMetricFamily(
            "quotapool_credential_status",
            "1 for the credential's current status",
            labels=["credential", "status"],
        )
        for credential in snapshot.credentials:
            state, name = snapshot.state(credential.id), credential.name
            windows: list[tuple[str, QuotaWindow | None]] = [
                ("primary", state.primary),
                ("secondary", state.secondary),
            ]
            for limit in {id(q): q for q in state.additional.values()}.values():
                windows += [(f"{limit.name}:primary", limit.primary)]
                windows += [(f"{limit.name}:secondary", limit.secondary)]
            for window_name, window in windows:
                if window is None:
                    continue
                used.add_metric([name, window_name], window.used_at(now))
                if window.resets_at is not None and window.resets_at > now:
                    reset.add_metric([name, window_name], window.resets_at - now)
            in_flight.add_metric([name], state.in_flight)
            shown = state.status.value if state.limited_at(now) or not state.until else "active"
            status.add_metric([name, shown], 1)
        yield from (used, reset, in_flight, status)

    def _writers(self) -> Iterable[Metric]:
        queued = GaugeMetricFamily(
            "quotapool_log_queue_rows", "Rows waiting to be written", labels=["table"]
        )
        lost = CounterMetricFamily(
            "quotapool_log_rows_lost", "Rows that could not be stored", labels=["table"]
        )
        for writer in self.writers:
            health = writer.health()
            queued.add_metric([health.table], health.queued)
            lost.add_metric([health.table], health.lost)
        yield from (queued, lost)
