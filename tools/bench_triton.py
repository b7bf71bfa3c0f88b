"""A `vllm.benchmarks.serve` request function that speaks Triton's gRPC API directly.

Registered as backend "triton-grpc", it lets the same load generator (dataset, concurrency,
timing) drive Triton without our OpenAI frontend, to split the cost between the two. It
uses the frontend's own transport (`openai_frontend.triton_client.TritonClient`), so the
only difference measured is the HTTP/SSE layer. `api_url` is `http://HOST:GRPC_PORT/<model>`.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

from openai_frontend.triton_client import TritonClient

BACKEND = "triton-grpc"
_clients: dict[tuple[int, str], TritonClient] = {}


def _client(url: str) -> TritonClient:
    # A grpc.aio channel belongs to the event loop that made it.
    key = (id(asyncio.get_running_loop()), url)
    if key not in _clients:
        _clients[key] = TritonClient(url)
    return _clients[key]


async def request(request_func_input, session=None, pbar=None):
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncOutput

    url = urlparse(request_func_input.api_url)
    model = url.path.strip("/") or request_func_input.model
    params = {"max_tokens": request_func_input.output_len, "ignore_eos": bool(request_func_input.ignore_eos)}
    values = {
        "text_input": request_func_input.prompt,
        "stream": True,
        "sampling_parameters": params,
        "return_num_output_tokens": True,
    }
    output = RequestFuncOutput()
    output.prompt_len = request_func_input.prompt_len
    start = last = time.perf_counter()
    output.start_time = start
    text, tokens = [], 0
    try:
        async for outputs in _client(url.netloc).generate(model, values):
            now = time.perf_counter()
            if output.ttft == 0.0:
                output.ttft = now - start
            else:
                output.itl.append(now - last)
            last = now
            text.append(outputs["text_output"][0].decode())
            tokens += int(outputs["num_output_tokens"][0])
        output.generated_text = "".join(text)
        output.output_tokens = tokens
        output.latency = time.perf_counter() - start
        output.success = True
    except Exception as exc:  # reported per request, as vLLM's own request functions do
        output.success = False
        output.error = str(exc)
    if pbar is not None:
        pbar.update(1)
    return output


def register() -> None:
    from vllm.benchmarks.lib.endpoint_request_func import ASYNC_REQUEST_FUNCS

    ASYNC_REQUEST_FUNCS.setdefault(BACKEND, request)
