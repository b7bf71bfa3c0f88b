"""One request's trace across every hop, on the real stack: `triton-llm serve` (the frontend, and
Triton serving the transformers SmolLM2 alone: ready in seconds) with the OTEL_* variables naming an
OTLP/HTTP receiver started here. Its own stack, not the session's Triton: tracing needs Triton's
trace flags, and the ~400 tests on the shared one must not pay for spans (docs/operations.md#traces).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import HF_OVERRIDES
from tests.otlp_receiver import Receiver, Span
from tests.servers import free_port, make_repository, serve_command, serve_up

MODEL = "smollm2-hf"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SERVICES = {"frontend": "triton-llm-frontend", "triton": "triton-inference-server", "model": "triton-llm-model"}
ENGINE = {"llm_request", "queue", "prefill", "decode"}


@dataclass
class Stack:
    proc: subprocess.Popen
    log: Path
    url: str
    http_port: int
    receiver: Receiver

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


@pytest.fixture(scope="module")
def traced(model_dir, tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("traced")
    repository = make_repository(tmp / "repo", {MODEL: {"model": str(model_dir), **HF_OVERRIDES}})
    receiver = Receiver()
    http, grpc, metrics, port = free_port(), free_port(), free_port(), free_port()
    # Spans leave each process 0.1 s after they end (the batch processors' default is 5 s).
    env = {**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    log = tmp / "serve.log"
    stack_up = serve_up(
        serve_command(repository, http, grpc, metrics, port), log, f"http://127.0.0.1:{port}/health/ready", env
    )
    try:
        with stack_up as proc:
            yield Stack(proc, log, f"http://127.0.0.1:{port}", http, receiver)
    finally:
        receiver.close()
        spans = [dataclasses.asdict(s) for s in receiver.spans]  # what the receiver got, to read after a failure
        (tmp / "spans.json").write_text(json.dumps({"exports": receiver.posts, "spans": spans}, indent=1))


def by_service(spans: list[Span]) -> dict[str, list[Span]]:
    return {hop: [s for s in spans if s.service == name] for hop, name in SERVICES.items()}


TRITON = {"InferRequest", MODEL, "compute"}  # Triton 2.51's three: the request (under ours), the model's, its compute


def whole(spans: list[Span]) -> bool:
    """Every hop's spans are in. Each process exports on its own clock (Triton's InferRequest may come
    a batch after its compute span), so a trace counts as whole only with all of them."""
    hops = by_service(spans)
    return (bool(hops["frontend"]) and TRITON <= {s.name for s in hops["triton"]}
            and ENGINE <= {s.name for s in hops["model"]})  # fmt: skip


def check_chain(spans: list[Span], frontend_parent: str) -> None:
    """frontend (under `frontend_parent`) -> Triton's spans -> llm_request -> queue, prefill, decode."""
    hops = by_service(spans)
    [front] = hops["frontend"]  # one span per HTTP request
    assert front.parent_id == frontend_parent and front.attributes["http.response.status_code"] == "200"
    assert front.attributes["gen_ai.request.model"] == MODEL
    triton = {s.name: s for s in hops["triton"]}
    assert set(triton) == TRITON, sorted(triton)
    assert triton["InferRequest"].parent_id == front.span_id
    assert triton[MODEL].parent_id == triton["InferRequest"].span_id
    assert triton["compute"].parent_id == triton[MODEL].span_id
    engine = {s.name: s for s in hops["model"]}
    assert engine["llm_request"].parent_id == triton[MODEL].span_id, "the context Triton hands the model"
    assert all(engine[n].parent_id == engine["llm_request"].span_id for n in ("queue", "prefill", "decode"))
    assert engine["llm_request"].attributes["triton_llm.outcome"] == "success"


def test_one_requests_trace_holds_the_frontend_triton_and_engine_spans(traced):
    # First a request straight to Triton with no context: rate=0, so Triton does not trace it.
    direct = requests.post(f"http://127.0.0.1:{traced.http_port}/v2/models/{MODEL}/generate",
                           json={"text_input": "Hi", "max_tokens": 2}, timeout=60)  # fmt: skip
    assert direct.status_code == 200, direct.text
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0}
    headers = {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01", "tracestate": "vendor=abc"}
    r = requests.post(f"{traced.url}/openai/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    spans = traced.receiver.wait_for(TRACE_ID, whole)
    assert whole(spans), (sorted((s.service, s.name) for s in spans), traced.receiver.posts, traced.log_tail())
    check_chain(spans, CLIENT_SPAN)
    # Every span Triton exported belongs to a frontend request's trace: the direct request made none.
    frontend_traces = {s.trace_id for s in traced.receiver.spans if s.service == SERVICES["frontend"]}
    assert {s.trace_id for s in traced.receiver.spans if s.service == SERVICES["triton"]} <= frontend_traces


def test_a_stream_without_a_traceparent_begins_its_own_trace(traced):
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0, "stream": True}
    r = requests.post(f"{traced.url}/openai/v1/completions", json=body, headers={"traceparent": "garbage"}, timeout=60)
    assert r.status_code == 200 and "data: [DONE]" in r.text
    rid = r.headers["x-request-id"]
    front = traced.receiver.wait_for_span(
        lambda s: s.service == SERVICES["frontend"] and s.attributes.get("gen_ai.request.id") == rid
    )
    assert front.parent_id == "" and front.trace_id != TRACE_ID
    spans = traced.receiver.wait_for(front.trace_id, whole)
    assert whole(spans), sorted((s.service, s.name) for s in spans)
    check_chain(spans, "")
