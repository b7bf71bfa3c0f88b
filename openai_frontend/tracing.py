"""OpenTelemetry traces of the frontend's requests, on only when an OTLP endpoint is configured.

The standard variables decide (`configured`): an endpoint in `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
`OTEL_EXPORTER_OTLP_ENDPOINT`, not turned off by `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`;
the sampler, service name and batching are the SDK's own `OTEL_*` variables. `triton-llm serve` turns
Triton's OpenTelemetry trace mode on from the same variables, and the models read them too
(triton_llm/tracing.py), so one trace id runs frontend -> Triton -> engine.

Off, nothing here imports OpenTelemetry and no request pays for it: `create_app` leaves
`TraceRequests` out of its middleware, and `triton_headers` is one context-variable read.
On, `TraceRequests` gives each HTTP request (the probes and /metrics aside) one SERVER span: the
child of the client's W3C `traceparent` (with its `tracestate`) when it sent one valid header,
else the root of a new trace (a malformed one is ignored, as the W3C spec says, never an error).
`triton_headers` hands that span's context to Triton as gRPC metadata; Triton's OpenTelemetry
mode makes its spans, and through them the engine's, children of ours.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # at run time, the middleware's imports wait until tracing is on (serve imports this module)
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

SERVICE = "triton-llm-frontend"  # service.name when OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) gives none
# The span of the request being served (None: tracing is off, or this request is not sampled).
_request_span: ContextVar[Any] = ContextVar("openai_frontend_span", default=None)


def configured(env: Mapping[str, str] = os.environ) -> bool:
    """An OTLP endpoint is set and tracing is not turned off (the OpenTelemetry SDK's variables)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def traces_url(env: Mapping[str, str] = os.environ) -> str | None:
    """Where spans go, by the OTLP/HTTP exporter's rule (the base endpoint + /v1/traces); None when off."""
    if not configured(env):
        return None
    if url := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return url
    return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"


def install_provider(service: str = SERVICE) -> None:
    """This process's tracer provider from the OTEL_* variables (OTLP/HTTP exporter, sampler, batch,
    resource; `service` when they name none), unless one is set already (an `opentelemetry-instrument`
    run's, a test's). The models' stubs install theirs with it too (triton_llm/tracing.py)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)  # its sampler: OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def triton_headers(model: str) -> dict[str, str] | None:
    """The gRPC metadata that puts Triton's spans for `model` under this request's (None: not traced)."""
    span = _request_span.get()
    if span is None:
        return None
    from opentelemetry.trace import set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    span.set_attribute("gen_ai.request.model", model)
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, set_span_in_context(span))
    return carrier


class TraceRequests:
    """One SERVER span per HTTP request, named `<method> <route>`, to the last byte of its response."""

    def __init__(self, app: ASGIApp, route_prefix: str = ""):
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from openai_frontend.metrics import route_label
        from openai_frontend.middleware import UNGATED

        self.app, self.route_prefix = app, route_prefix
        self.route_label, self.ungated = route_label, UNGATED
        self.trace = trace
        self.tracer = trace.get_tracer("openai_frontend")
        self.w3c = TraceContextTextMapPropagator()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.ungated:
            return await self.app(scope, receive, send)
        method = scope["method"]
        parent = self.w3c.extract(_w3c_headers(scope["headers"]))
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        span = self.tracer.start_span(method, parent, self.trace.SpanKind.SERVER, attributes)
        if not span.is_recording():  # not sampled: nothing to record, nothing sent on to Triton
            return await self.app(scope, receive, send)
        status = 500  # unless a response starts: an exception FastAPI did not handle

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = _request_span.set(span)
        try:
            with self.trace.use_span(span, end_on_exit=False):
                await self.app(scope, receive, send_status)
        finally:
            _request_span.reset(token)
            route = self.route_label(scope, self.route_prefix)
            span.update_name(f"{method} {route}")
            span.set_attributes({"http.route": route, "http.response.status_code": status})
            if request_id := scope.get("state", {}).get("request_id"):
                span.set_attribute("gen_ai.request.id", request_id)  # x-request-id, also Triton's request id
            if status >= 500:
                span.set_status(self.trace.StatusCode.ERROR)
            span.end()


def _w3c_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """`traceparent` when sent exactly once (two are ambiguous: a new trace), and `tracestate`."""
    parents = [v for k, v in headers if k == b"traceparent"]
    states = [v for k, v in headers if k == b"tracestate"]
    carrier = {"traceparent": parents[0].decode("latin-1")} if len(parents) == 1 else {}
    if carrier and states:  # several tracestate headers are one list (W3C)
        carrier["tracestate"] = ",".join(v.decode("latin-1") for v in states)
    return carrier
