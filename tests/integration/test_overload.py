"""Load shedding on the real stack: a burst over a model's bound gets 429s with Retry-After at
once, the requests admitted finish with the text a lone request gets, and /health stays fast.

`smollm2-hf` has the default bound, 2 × its max_num_seqs (32 in the test repository);
`minilm-bounded` is the demo's minilm with Triton's queue bound set to 2 requests.
"""

from __future__ import annotations

import asyncio
import json
import time
from statistics import median

import httpx
import pytest
import requests

from tests.conftest import HF_OVERRIDES

MODEL = "smollm2-hf"
BOUND = 2 * HF_OVERRIDES["max_num_seqs"]  # the default: one batch running, one waiting
BURST = 2 * BOUND
PROMPT = "The capital of France is"
GREEDY = {"max_tokens": 4, "temperature": 0.0}


async def _burst(url: str, bodies: list[dict], health_url: str) -> tuple[list[httpx.Response], list[float]]:
    """Send `bodies` at once; meanwhile time /health every 0.1 s until the last answer."""
    limits = httpx.Limits(max_connections=len(bodies) + 1)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one(body: dict) -> httpx.Response:
            started = time.perf_counter()
            response = await client.post(url, json=body)
            response.elapsed_s = time.perf_counter() - started  # type: ignore[attr-defined]
            return response

        tasks = [asyncio.create_task(one(b)) for b in bodies]
        health = []
        while not all(t.done() for t in tasks):
            started = time.perf_counter()
            assert (await client.get(health_url)).status_code == 200
            health.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)
        return [t.result() for t in tasks], health


def burst(url: str, bodies: list[dict], frontend) -> tuple[list[httpx.Response], list[float]]:
    return asyncio.run(_burst(url, bodies, f"{frontend.url}/health"))


def by_status(responses: list[httpx.Response]) -> dict[int, list[httpx.Response]]:
    out: dict[int, list[httpx.Response]] = {}
    for r in responses:
        out.setdefault(r.status_code, []).append(r)
    return out


def streamed_text(r: httpx.Response) -> str:
    events = [e.removeprefix("data: ") for e in r.text.split("\n\n") if e]
    assert events[-1] == "[DONE]", r.text
    return "".join(c["text"] for e in events[:-1] for c in json.loads(e)["choices"])


def assert_refused_fast(refused: list[httpx.Response], admitted: list[httpx.Response]) -> None:
    assert refused, "no request was refused: the burst never exceeded the bound"
    for r in refused:
        assert r.headers["retry-after"] == "1" and r.headers["content-type"] == "application/json"
        assert r.json()["error"]["type"] == "rate_limit_error", r.text
    # Refused before any work: sent at the same moment, answered sooner than the admitted. Compared
    # with them, not with a clock, because make test's second process shares the two cores.
    assert median(r.elapsed_s for r in refused) < median(r.elapsed_s for r in admitted), (
        sorted(r.elapsed_s for r in refused),
        sorted(r.elapsed_s for r in admitted),
    )


def test_a_burst_over_the_bound_is_shed_with_429_and_the_admitted_finish_unchanged(frontend):
    url = f"{frontend.url}/openai/v1/completions"
    body = {"model": MODEL, "prompt": PROMPT, **GREEDY}
    lone = requests.post(url, json=body, timeout=60).json()["choices"][0]["text"]
    # Half streamed: a stream refused before its first token gets the 429 as its status.
    responses, health = burst(url, [{**body, "stream": i % 2 == 1} for i in range(BURST)], frontend)
    statuses = by_status(responses)
    assert set(statuses) <= {200, 429}, {s: rs[0].text for s, rs in statuses.items()}
    assert_refused_fast(statuses[429], statuses[200])
    assert 0 < len(statuses[200]) <= BURST - len(statuses[429])
    for r in statuses[200]:
        streamed = r.headers["content-type"].startswith("text/event-stream")
        assert (streamed_text(r) if streamed else r.json()["choices"][0]["text"]) == lone
    assert max(health) < 2.0, health  # not starved by the burst (generous: make test's second process shares the cores)
    # Once the burst is over, the model serves again.
    assert requests.post(url, json=body, timeout=60).json()["choices"][0]["text"] == lone


def test_tritons_generate_endpoint_refuses_past_the_bound_with_the_overloaded_error(triton, frontend):
    url = f"{triton.http_url}/v2/models/{MODEL}/generate"
    body = {"text_input": PROMPT, "parameters": GREEDY}
    responses, health = burst(url, [body] * BURST, frontend)
    statuses = by_status(responses)
    # Triton's generate endpoint answers a model's error with 400 whatever its code; the
    # structured message says why (docs/protocol.md#errors).
    refused = statuses.get(400, [])
    assert refused and set(statuses) == {200, 400}, {s: rs[0].text for s, rs in statuses.items()}
    for r in refused:
        error = json.loads(r.json()["error"])
        assert error["type"] == "overloaded" and error["retry_after"] == 1, error
        assert f"limit of {BOUND} requests" in error["message"]
    assert max(health) < 2.0, health  # not starved by the burst (generous: make test's second process shares the cores)


def test_an_encoders_full_queue_is_a_429(frontend):
    # minilm-bounded queues 2 Triton requests (conftest); each of these is one, of 64 texts.
    body = {"model": "minilm-bounded", "input": ["a sentence of some length to embed " * 8] * 64}
    responses, health = burst(f"{frontend.url}/openai/v1/embeddings", [body] * 16, frontend)
    statuses = by_status(responses)
    assert set(statuses) <= {200, 429}, {s: rs[0].text for s, rs in statuses.items()}
    assert_refused_fast(statuses.get(429, []), statuses[200])
    assert "queue is full" in statuses[429][0].json()["error"]["message"]
    assert all(len(r.json()["data"]) == 64 for r in statuses.get(200, []))
    assert max(health) < 2.0, health  # not starved by the burst (generous: make test's second process shares the cores)


@pytest.mark.parametrize("model", ["smollm2", "smollm2-hf"])
def test_a_chat_of_4_mb_is_refused_before_it_is_tokenized(frontend, model):
    """As vLLM, both engines refuse a text longer than the context can hold by its length in
    characters: tokenizing 4 MB took seconds of the engine's loop and kept 400 MB in the stub."""
    messages = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 74}] * 2048
    r = requests.post(f"{frontend.url}/openai/v1/chat/completions", json={"model": model, "messages": messages},
                      timeout=60)  # fmt: skip
    error = r.json()["error"]
    assert r.status_code == 400 and error["param"] == "messages", error
    assert "characters" in error["message"] and "maximum context length" in error["message"], error
