"""OpenTelemetry spans of a generation request inside its model: the engine's queue, prefill and decode.

On only when the standard variables name an OTLP endpoint (`configured`, and the tracer provider
`install_provider`: openai_frontend/tracing.py's, whose module imports nothing heavy), and
then only for the requests Triton itself traced: the spans' parent is the context Triton hands the
model with the request (`request.trace().get_context()`, Triton's OpenTelemetry mode), which sits
under the frontend's span when the frontend sent a `traceparent`. Off, OpenTelemetry is never
imported and the runner calls nothing here (its tracer is None).

Per traced request (the names and attributes of vLLM's own `llm_request` span):
  llm_request   the model's handling, from the runner taking it to its last response
    queue       the engine received it -> its prefill began
    prefill     -> its first token
    decode      -> its last token
The engine measures the three (`EngineTimings` on its final chunk: vLLM's own per-request stats,
the transformers batcher's clock). vLLM's tracing (`otlp_traces_endpoint`) is not used: it exports
one span with these durations as attributes, from a global tracer provider whose exporter defaults
to OTLP/gRPC (Triton exports OTLP/HTTP only), and the transformers engine would have none.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from openai_frontend.tracing import configured, install_provider
from triton_llm.generation.types import EngineTimings, GenerationChunk

logger = logging.getLogger(__name__)
SERVICE = "triton-llm-model"  # service.name when OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) gives none


def from_env(model_name: str) -> Tracer | None:
    """The model's tracer when tracing is configured, else None (nothing imported)."""
    return Tracer(model_name) if configured() else None


class Tracer:
    def __init__(self, model_name: str):
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        install_provider(SERVICE)
        self.model_name = model_name
        self.trace = trace
        self.tracer = trace.get_tracer("triton_llm")
        self._w3c = TraceContextTextMapPropagator()

    def start(self, request: Any) -> RequestSpans | None:
        """The spans of a request Triton traced (None for one it did not)."""
        parent = self._parent(request)
        return None if parent is None else RequestSpans(self, parent, request.request_id())

    def _parent(self, request: Any) -> Any:
        try:
            raw = request.trace().get_context()
        except Exception:  # a Triton without trace contexts for Python models
            return None
        if not raw:
            return None
        # Triton's context is a JSON carrier ({"traceparent": ..., "tracestate": ...}).
        try:
            carrier = json.loads(raw)
        except ValueError:
            carrier = {"traceparent": raw}
        if not isinstance(carrier, dict):
            return None
        context = self._w3c.extract({str(k): str(v) for k, v in carrier.items()})
        return context if self.trace.get_current_span(context).get_span_context().is_valid else None


class RequestSpans:
    """One traced request's counts, and its spans once it has ended."""

    def __init__(self, tracer: Tracer, parent: Any, request_id: str):
        self.tracer, self.parent, self.request_id = tracer, parent, request_id
        self.started_ns = time.time_ns()
        self.prompt_tokens = self.completion_tokens = 0
        self.timings: EngineTimings | None = None

    def chunk(self, chunk: GenerationChunk) -> None:
        self.prompt_tokens = self.prompt_tokens or chunk.num_input_tokens
        self.completion_tokens += sum(c.num_tokens for c in chunk.choices)
        self.timings = chunk.timings or self.timings

    def end(self, outcome: str) -> None:
        """Export the spans; `outcome` is the runner's (success, invalid, cancelled, error). Never raises:
        the request has had its final response."""
        try:
            self._export(outcome)
        except Exception:
            logger.warning("%s: exporting the spans of request %s failed", self.tracer.model_name, self.request_id,
                           exc_info=True)  # fmt: skip

    def _export(self, outcome: str) -> None:
        from opentelemetry.trace import SpanKind, StatusCode

        t, timings = self.tracer, self.timings
        attributes: dict[str, Any] = {
            "gen_ai.request.id": self.request_id,
            "gen_ai.response.model": t.model_name,
            "gen_ai.usage.prompt_tokens": self.prompt_tokens,
            "gen_ai.usage.completion_tokens": self.completion_tokens,
            "triton_llm.outcome": outcome,
        }
        if timings is not None:
            attributes["gen_ai.latency.time_in_queue"] = timings.scheduled - timings.queued
            attributes["gen_ai.latency.time_in_model_prefill"] = timings.first_token - timings.scheduled
            attributes["gen_ai.latency.time_in_model_decode"] = timings.last_token - timings.first_token
        span = t.tracer.start_span("llm_request", self.parent, SpanKind.SERVER, attributes, start_time=self.started_ns)
        if outcome == "error":
            span.set_status(StatusCode.ERROR)
        if timings is not None:
            context = t.trace.set_span_in_context(span)
            wall = time.time_ns() - time.monotonic_ns()  # monotonic seconds -> epoch nanoseconds
            marks = (timings.queued, timings.scheduled, timings.first_token, timings.last_token)
            stamps = [wall + int(s * 1e9) for s in marks]
            for name, start, end in zip(("queue", "prefill", "decode"), stamps[:-1], stamps[1:], strict=True):
                t.tracer.start_span(name, context, start_time=start).end(end_time=max(start, end))
        span.end()
