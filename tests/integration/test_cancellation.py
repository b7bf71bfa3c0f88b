"""A request its client cancels is aborted in the engine, promptly."""

from __future__ import annotations

import time

import requests

from tests.clients import GrpcStream
from tests.servers import metric

LONG = {"max_tokens": 4000, "ignore_eos": True, "temperature": 0}


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def engine_requests(triton) -> float:
    return metric(triton.metrics_url, "llm_engine_unfinished_requests")


def assert_engine_stopped(triton) -> None:
    assert wait_for(lambda: engine_requests(triton) == 0), "the engine still holds the cancelled request"
    tokens = metric(triton.metrics_url, "llm_generated_tokens_total")
    time.sleep(1.0)
    assert metric(triton.metrics_url, "llm_generated_tokens_total") == tokens, "tokens are still being generated"
    assert metric(triton.metrics_url, "llm_requests_inflight") == 0


def test_grpc_stream_cancel_aborts_the_engine_request(triton):
    stream = GrpcStream(triton.grpc_url)
    stream.send("smollm2", {"text_input": "Tell me a long story.", "stream": True, "sampling_parameters": LONG})
    for _ in range(3):
        outputs, final = stream.next()
        assert not final
    assert wait_for(lambda: engine_requests(triton) == 1)
    stream.close(cancel=True)
    assert_engine_stopped(triton)


def test_grpc_non_streamed_cancel_aborts_the_engine_request(triton):
    stream = GrpcStream(triton.grpc_url)
    stream.send("smollm2", {"text_input": "Tell me a long story.", "sampling_parameters": LONG})
    assert wait_for(lambda: engine_requests(triton) == 1)
    time.sleep(0.5)
    stream.close(cancel=True)
    assert_engine_stopped(triton)


def test_http_disconnect_aborts_the_engine_request(triton):
    body = {"text_input": "Tell me a long story.", "stream": True, "parameters": LONG}
    r = requests.post(f"{triton.http_url}/v2/models/smollm2/generate_stream", json=body, stream=True, timeout=60)
    lines = r.iter_lines()
    while not next(lines):
        pass
    assert wait_for(lambda: engine_requests(triton) == 1)
    r.close()  # the client goes away mid-stream
    assert_engine_stopped(triton)
