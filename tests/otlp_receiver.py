"""A small OTLP/HTTP trace receiver for tests: what a collector (or Jaeger's :4318) would get.

It listens on a free port in a thread, decodes each `ExportTraceServiceRequest` (protobuf, as
OpenTelemetry's Python exporter sends it, or OTLP's JSON, gzipped or not) with `opentelemetry-proto`
and keeps every span as a `Span` with its service's name.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

# Spans leave each process within a second when it is idle; a machine busy with the other tests'
# engines (make test runs two pytest processes) has delayed Triton's and a model's export past 20 s.
WAIT_S = 90.0


@dataclass
class Span:
    service: str
    name: str
    trace_id: str  # hex, as in a traceparent
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict = field(default_factory=dict)


class Receiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.posts: list[str] = []  # each export's content type
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                kind = self.headers.get("Content-Type", "")
                receiver._add(kind, body)
                json_kind = "json" in kind
                answer = b"{}" if json_kind else ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/json" if json_kind else "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()

    def _add(self, kind: str, body: bytes) -> None:
        if "json" in kind:
            spans = list(_json_spans(json.loads(body)))
        else:
            spans = list(_protobuf_spans(ExportTraceServiceRequest.FromString(body)))
        with self._lock:
            self.posts.append(kind)
            self.spans += spans

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, trace_id: str, complete: Callable[[list[Span]], bool], timeout: float = WAIT_S) -> list[Span]:
        """The trace's spans once `complete` says they are all in (or what it holds after `timeout`)."""
        deadline = time.monotonic() + timeout
        while not complete(self.trace(trace_id)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.trace(trace_id)

    def wait_for_span(self, match: Callable[[Span], bool], timeout: float = WAIT_S) -> Span:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [s for s in self.spans if match(s)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise TimeoutError(f"no such span in {timeout} s; exports: {self.posts}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _protobuf_spans(request: ExportTraceServiceRequest):
    for resource_spans in request.resource_spans:
        service = _service(MessageToDict(resource_spans.resource).get("attributes", []))
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                attributes = _attributes(MessageToDict(s).get("attributes", []))
                yield Span(service, s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), attributes)


def _json_spans(request: dict):
    """OTLP's JSON: ids in hex (not protobuf JSON's base64), camelCase names."""
    for resource_spans in request.get("resourceSpans", []):
        service = _service(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for s in scope_spans.get("spans", []):
                attributes = _attributes(s.get("attributes", []))
                parent = s.get("parentSpanId", "")
                yield Span(service, s["name"], s["traceId"].lower(), s["spanId"].lower(), parent.lower(), attributes)


def _attributes(pairs: list[dict]) -> dict:
    return {p["key"]: next(iter(p.get("value", {}).values()), None) for p in pairs}


def _service(pairs: list[dict]) -> str:
    return str(_attributes(pairs).get("service.name", ""))
