"""`serve` turns Triton's OpenTelemetry trace mode on from the same OTEL_* variables as the frontend
and the models, and adds no flag when they name no endpoint."""

from __future__ import annotations

from triton_llm.cli import tritonserver


def test_no_endpoint_no_trace_flags():
    assert tritonserver.trace_flags({}) == []
    assert tritonserver.trace_flags({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}) == []


def test_an_endpoint_turns_tritons_opentelemetry_mode_on():
    flags = tritonserver.trace_flags({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert flags == [
        "--trace-config=mode=opentelemetry",
        "--trace-config=level=TIMESTAMPS",
        "--trace-config=rate=0",  # only requests that carry a context: the frontend's sampled ones
        "--trace-config=count=-1",
        "--trace-config=opentelemetry,url=http://collector:4318/v1/traces",
        "--trace-config=opentelemetry,resource=service.name=triton-inference-server",
    ]
    named = tritonserver.trace_flags({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/t", "OTEL_SERVICE_NAME": "llm"})
    assert "--trace-config=opentelemetry,url=http://c/t" in named
    assert "--trace-config=opentelemetry,resource=service.name=llm" in named
