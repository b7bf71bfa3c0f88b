"""The frontend's traces on the fake Triton, read from the SDK's in-memory exporter: one span per
HTTP request under the client's W3C `traceparent`, its context forwarded to Triton; a bad header
starts a new trace; off, no OpenTelemetry import and nothing sent."""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind, StatusCode

from openai_frontend import tracing
from openai_frontend.app import create_app
from tests.unit.fakes.model_server import FakeTriton, Response, TritonError
from tests.unit.fakes.spans import memory_exporter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
CHAT = {"model": "gen", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
ANSWER = [Response(["Hello"], finish_reasons=["stop"], num_output_tokens=[1], num_input_tokens=2)]


@pytest.fixture
def exporter(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")  # never reached
    return memory_exporter()


def serve(fake: FakeTriton | None = None) -> tuple[TestClient, FakeTriton]:
    fake = fake or FakeTriton(script=lambda model, values: ANSWER)
    return TestClient(create_app(client=fake)), fake


def only_span(exporter):
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


@pytest.mark.parametrize("stream", [False, True])
def test_a_traceparent_is_the_parent_and_its_trace_goes_on_to_triton(exporter, stream):
    client, fake = serve()
    with client:
        r = client.post(
            "/openai/v1/chat/completions", json={**CHAT, "stream": stream},
            headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc"},
        )  # fmt: skip
    assert r.status_code == 200 and "Hello" in r.text
    span = only_span(exporter)  # ended after the stream's last byte
    assert span.name == "POST /openai/v1/chat/completions" and span.kind == SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == TRACE_ID and f"{span.parent.span_id:016x}" == PARENT_ID
    assert span.attributes["http.route"] == "/openai/v1/chat/completions"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["gen_ai.request.model"] == "gen"
    assert span.attributes["gen_ai.request.id"] == r.headers["x-request-id"] == fake.request_ids[0]
    # Triton gets our span as its parent, with the caller's tracestate.
    assert fake.grpc_headers == [{"traceparent": f"00-{TRACE_ID}-{span.context.span_id:016x}-01",
                                  "tracestate": "vendor=abc"}]  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "not a traceparent"},
        {"traceparent": f"00-{'0' * 32}-{PARENT_ID}-01"},  # an all-zero trace id is invalid
        {"traceparent": f"ff-{TRACE_ID}-{PARENT_ID}-01"},  # version ff is invalid
        {"traceparent": f"00-{TRACE_ID.upper()}-{PARENT_ID}-01"},  # ids are lowercase hex
    ],
)
def test_without_a_valid_traceparent_a_new_trace_begins(exporter, headers):
    client, fake = serve()
    with client:
        r = client.post("/openai/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 200
    span = only_span(exporter)
    assert span.parent is None and f"{span.context.trace_id:032x}" != TRACE_ID
    assert fake.grpc_headers[0]["traceparent"].split("-")[1] == f"{span.context.trace_id:032x}"


def test_two_traceparent_headers_are_ignored(exporter):
    client, _ = serve()
    with client:
        headers = [("traceparent", TRACEPARENT), ("traceparent", f"00-{'1' * 32}-{PARENT_ID}-01")]
        assert client.post("/openai/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
    assert only_span(exporter).parent is None


def test_an_unsampled_parent_is_not_recorded_nor_sent_on(exporter):
    client, fake = serve()
    with client:
        r = client.post("/openai/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT[:-2] + "00"})
    assert r.status_code == 200
    assert exporter.get_finished_spans() == () and fake.grpc_headers == [None]


def test_embeddings_forward_the_context_too(exporter):
    client, fake = serve()
    with client:
        r = client.post("/openai/v1/embeddings", json={"model": "emb", "input": ["a", "b"]},
                        headers={"traceparent": TRACEPARENT})  # fmt: skip
    assert r.status_code == 200
    span = only_span(exporter)
    assert span.name == "POST /openai/v1/embeddings" and span.attributes["gen_ai.request.model"] == "emb"
    assert fake.grpc_headers[0]["traceparent"] == f"00-{TRACE_ID}-{span.context.span_id:016x}-01"


def test_errors_are_in_the_span_and_only_a_5xx_is_an_error(exporter):
    failing = FakeTriton(script=lambda model, values: [TritonError("engine exploded", "StatusCode.INTERNAL")])
    client, _ = serve(failing)
    with client:
        assert client.post("/openai/v1/chat/completions", json={**CHAT, "model": "nope"}).status_code == 404
        assert client.post("/openai/v1/chat/completions", json=CHAT).status_code == 500
    missing, failed = exporter.get_finished_spans()
    assert missing.attributes["http.response.status_code"] == 404 and missing.status.status_code == StatusCode.UNSET
    assert failed.attributes["http.response.status_code"] == 500 and failed.status.status_code == StatusCode.ERROR


def test_probes_and_metrics_are_not_traced(exporter):
    client, _ = serve()
    with client:
        for path in ("/health", "/health/live", "/health/ready", "/metrics"):
            assert client.get(path, headers={"traceparent": TRACEPARENT}).status_code == 200
    assert exporter.get_finished_spans() == ()


def test_off_nothing_imports_opentelemetry_nor_sends_a_header(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # any import of it now fails
    client, fake = serve()
    with client:
        r = client.post("/openai/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
        assert r.status_code == 200
        assert client.post("/openai/v1/embeddings", json={"model": "emb", "input": "a"}).status_code == 200
    assert fake.grpc_headers == [None, None]
    assert not any(m.cls is tracing.TraceRequests for m in client.app.user_middleware)


@pytest.mark.parametrize(
    ("env", "on", "url"),
    [
        ({}, False, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True, "http://collector:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, True, "http://collector:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/t", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"},
         True, "http://c:4318/t"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False, None),
        ({"OTEL_SERVICE_NAME": "llm"}, False, None),  # a name is not an endpoint
    ],
)  # fmt: skip
def test_the_otel_variables_decide(env, on, url):
    assert tracing.configured(env) is on and tracing.traces_url(env) == url
