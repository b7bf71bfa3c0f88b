"""The engine's spans inside the model, on the fake Triton module: under the context Triton hands the
model, `llm_request` and its queue, prefill and decode from the engine's timings; nothing for a
request Triton did not trace, and nothing at all (no OpenTelemetry import) when tracing is off."""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

import pytest
from opentelemetry.trace import StatusCode

from tests.unit.fakes.engine import FakeEngine, Script
from tests.unit.fakes.harness import Served, start_generation
from tests.unit.fakes.spans import by_name, memory_exporter
from triton_llm.generation.engines.hf import engine as hf_engine
from triton_llm.generation.engines.vllm import engine as vllm_engine
from triton_llm.generation.types import EngineTimings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRITON_SPAN = "00f067aa0ba902b7"
CONTEXT = json.dumps({"traceparent": f"00-{TRACE_ID}-{TRITON_SPAN}-01"})  # as Triton's get_context() gives it


class TimedEngine(FakeEngine):
    """The fake engine, its final chunk carrying timings as the real engines' do."""

    async def generate(self, request, request_id):
        async for chunk in super().generate(request, request_id):
            if chunk.finished:
                now = time.monotonic()
                chunk.timings = EngineTimings(now - 0.3, now - 0.2, now - 0.1, now)
            yield chunk


@pytest.fixture
def serve(monkeypatch, tmp_path):
    started: list[Served] = []

    def start(engine: FakeEngine) -> Served:
        started.append(start_generation(monkeypatch, tmp_path, engine))
        return started[-1]

    yield start
    for served in started:
        served.finalize()


@pytest.fixture
def exporter(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")  # never reached
    return memory_exporter()


@pytest.mark.parametrize("stream", [False, True])
def test_a_traced_request_has_the_engine_spans_under_tritons(serve, exporter, stream):
    served = serve(TimedEngine(default=Script(chunks=3)))
    request = served.request("hello", stream=stream)
    request.trace_context = CONTEXT
    served.execute(request)
    served.wait()
    served.check()  # the model stopped: every request's spans have ended
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"llm_request", "queue", "prefill", "decode"}
    top = spans["llm_request"]
    assert f"{top.context.trace_id:032x}" == TRACE_ID and f"{top.parent.span_id:016x}" == TRITON_SPAN
    assert top.attributes["gen_ai.request.id"] == request.request_id()
    assert top.attributes["gen_ai.response.model"] == "fake"
    assert top.attributes["gen_ai.usage.prompt_tokens"] == 2 and top.attributes["gen_ai.usage.completion_tokens"] == 3
    assert top.attributes["triton_llm.outcome"] == "success"
    assert top.attributes["gen_ai.latency.time_in_queue"] == pytest.approx(0.1)
    queue, prefill, decode = spans["queue"], spans["prefill"], spans["decode"]
    for child in (queue, prefill, decode):
        assert child.parent.span_id == top.context.span_id and child.context.trace_id == top.context.trace_id
        assert child.end_time - child.start_time == pytest.approx(100_000_000, abs=1_000_000)  # 0.1 s each
    assert queue.end_time == prefill.start_time and prefill.end_time == decode.start_time


def test_a_request_triton_did_not_trace_has_no_spans(serve, exporter):
    served = serve(TimedEngine(default=Script(chunks=2)))
    served.execute(served.request("hello"))  # no trace context: Triton did not trace it
    served.wait()
    served.check()
    assert exporter.get_finished_spans() == ()


def test_an_engine_error_is_an_error_span_without_timings(serve, exporter):
    served = serve(FakeEngine(default=Script(chunks=1, error=RuntimeError("boom"))))
    request = served.request("hello")
    request.trace_context = CONTEXT
    served.execute(request)
    served.wait()
    served.check()
    [span] = exporter.get_finished_spans()
    assert span.name == "llm_request" and span.status.status_code == StatusCode.ERROR
    assert span.attributes["triton_llm.outcome"] == "error"


def test_off_the_runner_has_no_tracer_and_imports_no_opentelemetry(serve, monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # any import of it now fails
    served = serve(TimedEngine(default=Script(chunks=2)))
    request = served.request("hello")
    request.trace_context = CONTEXT  # Triton traced it, but this model does not trace
    served.execute(request)
    served.wait()
    served.check()
    assert served.model.tracer is None and not request.sender.error()


def test_the_transformers_engine_times_a_request_over_its_choices():
    a = SimpleNamespace(arrived=1.0, joined=2.0, first_token=3.0, last_token=5.0)
    b = SimpleNamespace(arrived=1.5, joined=2.5, first_token=3.5, last_token=6.0)
    assert hf_engine._timings([a, b]) == EngineTimings(1.0, 2.0, 3.0, 6.0)
    assert hf_engine._timings([a, SimpleNamespace(arrived=1.0, joined=0.0, first_token=0.0, last_token=0.0)]) is None


def test_the_vllm_engine_takes_vllms_own_timestamps():
    stats = SimpleNamespace(queued_ts=10.0, scheduled_ts=10.5, first_token_ts=11.0, last_token_ts=12.0)
    assert vllm_engine._timings(SimpleNamespace(metrics=stats)) == EngineTimings(10.0, 10.5, 11.0, 12.0)
    assert vllm_engine._timings(SimpleNamespace(metrics=None)) is None  # vLLM kept no stats for it
    assert vllm_engine._timings(SimpleNamespace()) is None  # an older vLLM's output
    unscheduled = SimpleNamespace(queued_ts=10.0, scheduled_ts=0.0, first_token_ts=0.0, last_token_ts=0.0)
    assert vllm_engine._timings(SimpleNamespace(metrics=unscheduled)) is None
