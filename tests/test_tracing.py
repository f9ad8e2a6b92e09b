"""OpenTelemetry spans: their shape with the SDK's in-memory exporter, and the real OTLP/HTTP
exporter against a receiver on loopback, from a running server; off by default."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from quotapool import tracing
from quotapool.config import TracingConfig
from quotapool.proxy.record import Record
from quotapool.testing.serve import run_in_thread
from tests.conftest import HarnessFactory


def test_a_requests_spans_nest_and_its_trace_id_is_logged() -> None:
    exported = InMemorySpanExporter()
    traced = tracing.Tracing.build(TracingConfig(enabled=True), SimpleSpanProcessor(exported))
    assert traced is not None
    record = Record("r1", 0.0, "responses", "/v1/responses")
    with traced.request(record):
        with tracing.span("route", {"quotapool.strategy": "expiry_weighted"}):
            pass
        with tracing.span("upstream", {"quotapool.credential": "alpha"}):
            tracing.event("first byte")
        record.status, record.credential = 200, "alpha"
    spans = {s.name: s for s in exported.get_finished_spans()}
    root = spans["quotapool.request"]
    assert {spans["route"].parent.span_id, spans["upstream"].parent.span_id} == {  # type: ignore[union-attr]
        root.context.span_id
    }
    assert [e.name for e in spans["upstream"].events] == ["first byte"]
    assert root.attributes is not None and root.attributes["http.response.status_code"] == 200
    assert record.trace_id == f"{root.context.trace_id:032x}"
    with tracing.span("route", {}) as nothing:  # outside a traced request: no span
        assert nothing is None
    traced.shutdown()


def test_tracing_is_off_by_default() -> None:
    assert tracing.Tracing.build(TracingConfig()) is None


class Collector:
    """An OTLP/HTTP traces endpoint: decodes what the exporter posts (protobuf)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()
        self.app = web.Application()
        self.app.router.add_post("/v1/traces", self._traces)

    async def _traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        batch = ExportTraceServiceRequest.FromString(await request.read())
        with self.lock:
            for resource in batch.resource_spans:
                for scoped in resource.scope_spans:
                    self.spans.extend(scoped.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Collector, str]]:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export every 0.1 s, not 5 s
    found = Collector()
    with run_in_thread(found) as url:
        yield found, url


def test_a_running_server_exports_each_requests_spans_over_otlp(
    harness: HarnessFactory, collector: tuple[Collector, str]
) -> None:
    receiver, url = collector
    h = harness(tracing={"enabled": True, "endpoint": f"{url}/v1/traces"})
    h.openai().responses.create(model="gpt-5.5", input="hi")
    row = h.rows(1)[0]
    assert row["trace_id"] and len(row["trace_id"]) == 32
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with receiver.lock:
            names = {s.name for s in receiver.spans}
        if {"quotapool.request", "admission", "route", "upstream"} <= names:
            break
        time.sleep(0.1)
    with receiver.lock:
        spans = {s.name: s for s in receiver.spans}
    assert {"quotapool.request", "admission", "route", "upstream"} <= set(spans)
    assert spans["quotapool.request"].trace_id.hex() == row["trace_id"]
    upstream = spans["upstream"]
    assert [e.name for e in upstream.events] == ["first byte"]
    assert upstream.parent_span_id == spans["quotapool.request"].span_id
    attributes = {a.key: a.value for a in spans["route"].attributes}
    assert attributes["quotapool.selected"].string_value == row["credential"]
