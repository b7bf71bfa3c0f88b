"""The OpenTelemetry SDK's in-memory exporter as this test process's tracer provider.

OpenTelemetry lets a process set its global tracer provider once; every test that reads spans
shares this one (`memory_exporter` empties it first). With it set, the code under test keeps it
rather than building an OTLP exporter from the OTEL_* variables (`install_provider`).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

_exporter = InMemorySpanExporter()
_provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))  # the SDK's default sampler
_provider.add_span_processor(SimpleSpanProcessor(_exporter))  # exported as each span ends


def memory_exporter() -> InMemorySpanExporter:
    if trace.get_tracer_provider() is not _provider:
        trace.set_tracer_provider(_provider)  # once per process: a second provider is refused
    if trace.get_tracer_provider() is not _provider:
        raise RuntimeError("another tracer provider was set in this test process")
    _exporter.clear()
    return _exporter


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}
