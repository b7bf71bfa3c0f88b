"""A request its client cancels is aborted in the engine, promptly: over Triton's gRPC and
HTTP, and through the OpenAI frontend, streamed or not."""

from __future__ import annotations

import json
import logging
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.clients import GrpcStream
from tests.servers import engine_requests as held_by_engine
from tests.servers import metric

LONG = {"max_tokens": 4000, "ignore_eos": True, "temperature": 0}
logger = logging.getLogger(__name__)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def engine_requests(triton, model: str = "smollm2") -> float:
    return held_by_engine(triton.metrics_url, model)


def assert_engine_stopped(triton, model: str = "smollm2") -> None:
    assert wait_for(lambda: engine_requests(triton, model) == 0), "the engine still holds the cancelled request"
    tokens = metric(triton.metrics_url, "vllm:generation_tokens_total", model)
    time.sleep(1.0)
    assert metric(triton.metrics_url, "vllm:generation_tokens_total", model) == tokens, "tokens are still generated"


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


def post_and_hold(url: str, body: dict) -> socket.socket:
    """Send a POST on a raw socket and leave it open: closing it is the client going away."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    raw = json.dumps(body).encode()
    head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
    sock.sendall(head.encode() + f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
    return sock


@pytest.mark.parametrize("model", ["smollm2", "smollm2-hf"])
@pytest.mark.parametrize("path", ["completions", "chat/completions"])
def test_frontend_non_streamed_disconnect_aborts_the_engine_request(frontend, triton, model, path):
    prompt = "Tell me a long story."
    body = {"model": model, "max_tokens": 2000, "ignore_eos": True, "temperature": 0}
    body |= {"prompt": prompt} if path == "completions" else {"messages": [{"role": "user", "content": prompt}]}
    sock = post_and_hold(f"{frontend.url}/openai/v1/{path}", body)
    try:
        assert wait_for(lambda: engine_requests(triton, model) == 1), "the request never reached the engine"
        time.sleep(1.0)  # generating, with no byte sent back: the client times out and leaves
    finally:
        sock.close()
    left = time.monotonic()
    assert wait_for(lambda: engine_requests(triton, model) == 0, timeout=5), "the engine still holds the request"
    logger.info(
        "%s %s: the engine let the request go %.2f s after the client left", model, path, time.monotonic() - left
    )
    assert_engine_stopped(triton, model)
