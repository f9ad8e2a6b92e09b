"""OpenTelemetry spans per request, exported with OTLP — off unless `[tracing] enabled = true`
(with the `quotapool[tracing]` extra installed).

A request's span ("quotapool.request") holds its way in ("admission"), each routing decision
("route": the strategy, the winner, the reason) and each upstream attempt ("upstream", with a
"first byte" event when the client's answer starts); its trace id is in the request log. The
request's span names the `Tracing` for the code beneath it (a context variable), so nothing
is passed down, and with tracing off each place costs one lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from quotapool.config.sections import ConfigError, TracingConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span, Tracer

    from quotapool.proxy.record import Record

_CURRENT: ContextVar[Tracing | None] = ContextVar("quotapool_tracing", default=None)
Attribute = str | int | float | bool


class Tracing:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("quotapool")

    @classmethod
    def build(cls, config: TracingConfig, processor: SpanProcessor | None = None) -> Tracing | None:
        """None when off; `processor`: where spans go instead of OTLP (tests)."""
        if not config.enabled:
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
        except ImportError:
            raise ConfigError(
                "[tracing] enabled = true needs OpenTelemetry: pip install 'quotapool[tracing]'"
            ) from None
        provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=TraceIdRatioBased(config.sample_ratio),
        )
        exporter = OTLPSpanExporter(endpoint=config.endpoint, timeout=10)
        provider.add_span_processor(processor or BatchSpanProcessor(exporter))
        return cls(provider)

    @contextlib.contextmanager
    def request(self, record: Record) -> Iterator[Span]:
        """The request's span, current for everything beneath it; ended with what the log row
        says (status, credential, attempts, time to first byte, error)."""
        from opentelemetry.trace import SpanKind

        token = _CURRENT.set(self)
        try:
            with self.tracer.start_as_current_span(
                "quotapool.request",
                kind=SpanKind.SERVER,
                attributes={"quotapool.route": record.route, "url.path": record.path},
            ) as span:
                context = span.get_span_context()
                if context.is_valid:
                    record.trace_id = f"{context.trace_id:032x}"
                try:
                    yield span
                finally:
                    span.set_attributes(_ended(record))
        finally:
            _CURRENT.reset(token)

    def shutdown(self) -> None:
        """Export what is left (at the server's stop)."""
        self.provider.shutdown()


def _ended(record: Record) -> dict[str, Attribute]:
    found: dict[str, Any] = {
        "http.response.status_code": record.status,
        "quotapool.attempts": record.attempts,
        "quotapool.model": record.model,
        "quotapool.profile": record.profile,
        "quotapool.credential": record.credential,
        "quotapool.client_key": record.client_key,
        "quotapool.ttfb_ms": record.ttfb_ms,
        "quotapool.error": record.error,
    }
    return {k: v for k, v in found.items() if v is not None}


_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()
"""What `span` gives with tracing off (reusable: it holds nothing)."""


def span(
    name: str, attributes: Mapping[str, Attribute]
) -> contextlib.AbstractContextManager[Span | None]:
    """A child span of the current request's, when tracing is on (else nothing)."""
    tracing = _CURRENT.get()
    if tracing is None:
        return _NOTHING
    return tracing.tracer.start_as_current_span(name, attributes=attributes)


def event(name: str) -> None:
    """An event on the current span, when tracing is on."""
    if _CURRENT.get() is not None:
        from opentelemetry.trace import get_current_span

        get_current_span().add_event(name)
