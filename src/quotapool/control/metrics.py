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


def error_kind(status: int) -> str:
    if status == 429:
        return "limited"
    if status in (401, 403):
        return "refused"
    if status == 499:
        return "client_gone"
    return "upstream" if status >= 500 else "client"


class _Timing:
    """Time to first byte and to the end of one route's requests, in buckets (milliseconds)."""

    __slots__ = ("latency", "latency_sum", "ttfb", "ttfb_sum")

    def __init__(self) -> None:
        self.ttfb = [0] * (len(_BOUNDS_MS) + 1)
        self.latency = [0] * (len(_BOUNDS_MS) + 1)
        self.ttfb_sum = self.latency_sum = 0.0


_BOUNDS_MS = tuple(seconds * 1000.0 for seconds in SECONDS_BUCKETS)


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    cumulative, out = 0, []
    for bound, count in zip((*SECONDS_BUCKETS, float("inf")), counts, strict=True):
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
        memory: Callable[[], Mapping[str, tuple[int, int]]] = dict,
    ) -> None:
        self.snapshot = snapshot
        self.now = now
        self.writers = writers
        self.memory = memory
        """What grows with traffic: name → (bytes it takes, its bound)."""
        self.counts: dict[tuple[str, str, int], list[int]] = {}
        """(route, credential, status) → [requests, input, output, cached tokens]."""
        self.failovers: defaultdict[str, int] = defaultdict(int)
        self.timing: dict[str, _Timing] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, row: Mapping[str, Any]) -> None:
        """One finished request (its request-log row): a few increments, nothing else."""
        route = row["route"]
        key = (route, row["credential"] or "", row["status"])
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = [0, 0, 0, 0]
        counts[0] += 1
        if (tokens_in := row["input_tokens"]) is not None:
            counts[1] += tokens_in
            counts[2] += row["output_tokens"] or 0
            counts[3] += row["cached_tokens"] or 0
        if row["attempts"] > 1:
            self.failovers[route] += row["attempts"] - 1
        timing = self.timing.get(route)
        if timing is None:
            timing = self.timing[route] = _Timing()
        if (ttfb := row["ttfb_ms"]) is not None:
            timing.ttfb[bisect_left(_BOUNDS_MS, ttfb)] += 1
            timing.ttfb_sum += ttfb
        if (latency := row["latency_ms"]) is not None:
            timing.latency[bisect_left(_BOUNDS_MS, latency)] += 1
            timing.latency_sum += latency

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterable[Metric]:
        yield from self._traffic()
        yield from self._pool()
        yield from self._writers()
        yield from self._memory()

    def _memory(self) -> Iterable[Metric]:
        used = GaugeMetricFamily(
            "quotapool_memory_bytes", "Memory taken by what grows with traffic", labels=["store"]
        )
        bound = GaugeMetricFamily(
            "quotapool_memory_limit_bytes", "The most it may take", labels=["store"]
        )
        stores = dict(self.memory())
        for writer in self.writers:
            stores[f"held_rows:{writer.table.name}"] = (writer.held_bytes, writer.max_held_bytes)
        for name, (taken, most) in stores.items():
            used.add_metric([name], taken)
            bound.add_metric([name], most)
        yield from (used, bound)

    def _traffic(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "quotapool_requests",
            "Client requests by route, credential and status",
            labels=["route", "credential", "status"],
        )
        errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        for (route, credential, status), counts in self.counts.items():
            requests.add_metric([route, credential, str(status)], counts[0])
            if status >= 400:
                errors[(route, error_kind(status))] += counts[0]
            for kind, amount in zip(("input", "output", "cached"), counts[1:], strict=True):
                tokens[(credential, kind)] += amount
        token_family = CounterMetricFamily(
            "quotapool_tokens", "Tokens by credential and kind", labels=["credential", "kind"]
        )
        for token_labels, amount in tokens.items():
            token_family.add_metric(list(token_labels), amount)
        error_family = CounterMetricFamily(
            "quotapool_errors", "Requests answered with an error, by kind", labels=["route", "kind"]
        )
        for error_labels, count in errors.items():
            error_family.add_metric(list(error_labels), count)
        failovers = CounterMetricFamily(
            "quotapool_failovers", "Attempts moved to another credential", labels=["route"]
        )
        for route, count in self.failovers.items():
            failovers.add_metric([route], count)
        yield from (requests, token_family, failovers, error_family)
        ttfb = HistogramMetricFamily(
            "quotapool_ttfb_seconds", "Time to the first byte of the answer", labels=["route"]
        )
        latency = HistogramMetricFamily(
            "quotapool_latency_seconds", "Time to the end of the answer", labels=["route"]
        )
        for route, timing in self.timing.items():
            ttfb.add_metric([route], _buckets(timing.ttfb), timing.ttfb_sum / 1000.0)
            latency.add_metric([route], _buckets(timing.latency), timing.latency_sum / 1000.0)
        yield from (ttfb, latency)

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
        held = GaugeMetricFamily(
            "quotapool_log_held_rows",
            "Rows waiting in memory: neither the database nor the journal takes them",
            labels=["table"],
        )
        for writer in self.writers:
            health = writer.health()
            queued.add_metric([health.table], health.queued)
            lost.add_metric([health.table], health.lost)
            held.add_metric([health.table], health.held)
        yield from (queued, lost, held)
