"""The OpenAI frontend against the real stack, with the official `openai` SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
import requests

from tests.conftest import CHAT, GREEDY, PROMPTS
from tests.integration.test_cancellation import assert_engine_stopped, engine_requests, wait_for
from tests.servers import FrontendProcess, TritonProcess, free_port
from triton_llm.cli import tritonserver

MODEL = "smollm2"


@pytest.fixture(scope="module")
def client(frontend) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{frontend.url}/openai/v1", api_key="unused", max_retries=0)


def test_models(client):
    assert MODEL in [m.id for m in client.models.list().data]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_completion_equals_triton_and_usage_is_exact(client, vllm_reference):
    out = client.completions.create(model=MODEL, prompt=PROMPTS[0], **GREEDY)
    assert out.choices[0].text == vllm_reference[0]["text"]
    assert out.choices[0].finish_reason == ("length" if vllm_reference[0]["finish_reason"] == "length" else "stop")
    assert out.usage.prompt_tokens == vllm_reference[0]["num_input_tokens"]
    assert out.usage.completion_tokens == vllm_reference[0]["num_output_tokens"]
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_streamed_completion_concatenates_with_usage(client, vllm_reference):
    stream = client.completions.create(
        model=MODEL, prompt=PROMPTS[1], stream=True, stream_options={"include_usage": True}, **GREEDY
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == vllm_reference[1]["text"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == vllm_reference[1]["num_output_tokens"]
    assert chunks[-1].usage.prompt_tokens == vllm_reference[1]["num_input_tokens"]


def test_chat_equals_the_reference_with_exact_usage(client, vllm_reference):
    out = client.chat.completions.create(model=MODEL, messages=CHAT, **GREEDY)
    ref = vllm_reference[len(PROMPTS)]
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == ref["text"]
    assert out.usage.prompt_tokens == ref["num_input_tokens"]
    assert out.usage.completion_tokens == ref["num_output_tokens"]


def test_streamed_chat_has_role_first_and_finish_reason_last(client, vllm_reference):
    chunks = list(client.chat.completions.create(model=MODEL, messages=CHAT, stream=True, **GREEDY))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == vllm_reference[len(PROMPTS)]["text"]


def test_async_sdk(frontend, vllm_reference):
    async def run():
        client = openai.AsyncOpenAI(base_url=f"{frontend.url}/openai/v1", api_key="unused", max_retries=0)
        outs = await asyncio.gather(
            *[client.completions.create(model=MODEL, prompt=p, **GREEDY) for p in PROMPTS[:2]],
            client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=5),
        )
        await client.close()
        return outs

    outs = asyncio.run(run())
    assert outs[2].usage.completion_tokens == 5
    assert all(o.choices for o in outs)


def test_raw_sse_framing(frontend):
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{frontend.url}/openai/v1/completions", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for event in events[:-2]:
        assert event.startswith("data: ") and "\n" not in event
        assert json.loads(event[len("data: ") :])["object"] == "text_completion"


def test_n_and_prompt_lists_give_one_choice_each(client):
    out = client.completions.create(model=MODEL, prompt=["A", "B"], n=2, max_tokens=3, temperature=1.0, seed=1)
    assert [c.index for c in out.choices] == [0, 1, 2, 3]
    assert out.usage.completion_tokens == 12


def test_stop_strings(client):
    out = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", stop=[","], temperature=0, max_tokens=20)
    assert "," not in out.choices[0].text
    assert out.choices[0].finish_reason == "stop"


def test_echo_and_logprobs(client):
    out = client.completions.create(model=MODEL, prompt="Hello", echo=True, logprobs=2, max_tokens=3, temperature=0)
    choice = out.choices[0]
    assert choice.text.startswith("Hello")
    # The prompt's token first (no logprob: nothing precedes it), then the 3 generated (defect 7).
    assert len(choice.logprobs.tokens) == 4 and choice.logprobs.token_logprobs[0] is None
    assert all(lp <= 0 for lp in choice.logprobs.token_logprobs[1:])


def test_json_schema_response_format(client):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}},
        "required": ["city"],
        "additionalProperties": False,
    }
    out = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a city in France as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        max_tokens=40,
        temperature=0,
    )
    assert set(json.loads(out.choices[0].message.content)) == {"city"}


ERRORS = [
    ({"model": MODEL, "prompt": "x", "temperature": "hot"}, 400, "temperature"),
    ({"model": MODEL, "prompt": "x", "temprature": 0.5}, 400, "temprature"),
    ({"model": MODEL, "prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
    ({"model": MODEL, "prompt": "x", "n": 0}, 400, "n"),
    ({"model": MODEL, "prompt": ""}, 400, "prompt"),
    ({"model": MODEL}, 400, "prompt"),
    ({"model": MODEL, "prompt": "word " * 9000}, 400, "prompt"),  # found by the model (its `text_input`)
    ({"model": "no-such-model", "prompt": "x"}, 404, "model"),
]


@pytest.mark.parametrize(("body", "status", "param"), ERRORS, ids=[f"{e[1]}-{e[2]}" for e in ERRORS])
def test_errors_have_openai_shape(frontend, body, status, param):
    r = requests.post(f"{frontend.url}/openai/v1/completions", json=body, timeout=60)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and "Traceback" not in error["message"]


def test_chat_errors(frontend):
    r = requests.post(f"{frontend.url}/openai/v1/chat/completions", json={"model": MODEL, "messages": []}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    bad_role = {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}
    r = requests.post(f"{frontend.url}/openai/v1/chat/completions", json=bad_role, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("messages.0.role")


def test_a_prompt_over_the_context_names_the_openai_field(frontend):
    """The model refuses its `text_input`; the client sent `prompt` or `messages`."""
    long = "word " * 9000
    r = requests.post(f"{frontend.url}/openai/v1/completions", json={"model": MODEL, "prompt": long}, timeout=60)
    error = r.json()["error"]
    assert r.status_code == 400 and error["param"] == "prompt", error
    assert error["message"].startswith("prompt: ") and "context length" in error["message"]
    body = {"model": MODEL, "messages": [{"role": "user", "content": long}]}
    r = requests.post(f"{frontend.url}/openai/v1/chat/completions", json=body, timeout=60)
    error = r.json()["error"]
    assert r.status_code == 400 and error["param"] == "messages", error
    assert error["type"] == "invalid_request_error" and "context length" in error["message"]


def test_a_refusal_before_the_first_token_is_the_status_of_a_stream(frontend):
    """The stream starts with the model's first response (sse.py), as vLLM's server answers."""
    body = {"model": MODEL, "prompt": "word " * 9000, "stream": True}
    r = requests.post(f"{frontend.url}/openai/v1/completions", json=body, timeout=60)
    error = r.json()["error"]
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert "context length" in error["message"] and error["param"] == "prompt"


def test_disconnect_mid_stream_cancels_the_engine_request(frontend, triton):
    body = {"model": MODEL, "prompt": "Tell me a long story.", "max_tokens": 4000, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{frontend.url}/openai/v1/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        while not next(lines):
            pass
        assert wait_for(lambda: engine_requests(triton) == 1)
    assert_engine_stopped(triton)


def test_health_and_metrics(frontend):
    assert requests.get(f"{frontend.url}/health", timeout=10).status_code == 200
    text = requests.get(f"{frontend.url}/metrics", timeout=10).text
    assert 'openai_requests_total{route="/openai/v1/completions",status="200"}' in text
    assert "openai_time_to_first_token_seconds_bucket" in text


def test_api_key_and_route_prefix(triton, tmp_path):
    server = FrontendProcess(
        triton.grpc_url, tmp_path / "f.log", env={"KSERVE_OPENAI_ROUTE_PREFIX": ""}, args=["--api-key", "sekrit"]
    )
    try:
        server.wait_up()
        assert requests.get(f"{server.url}/v1/models", timeout=10).status_code == 401
        assert requests.get(f"{server.url}/openai/v1/models", timeout=10).status_code == 404
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sekrit", max_retries=0)
        assert sdk.completions.create(model=MODEL, prompt="Hi", max_tokens=2).usage.completion_tokens == 2
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    finally:
        server.stop()


def test_unreachable_triton_is_503_until_it_is_back(tmp_path):
    grpc_port = free_port()
    server = FrontendProcess(f"127.0.0.1:{grpc_port}", tmp_path / "f.log")
    triton = None
    try:
        server.wait_up(path="/health", status=503)
        r = requests.post(f"{server.url}/openai/v1/completions", json={"model": MODEL, "prompt": "x"}, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["type"] == "service_unavailable"
        assert requests.get(f"{server.url}/openai/v1/models", timeout=30).status_code == 503
        # Triton comes up (an empty repository is enough): the same frontend recovers.
        (tmp_path / "empty").mkdir()
        cmd = tritonserver.command(
            tmp_path / "empty", http_port=free_port(), grpc_port=grpc_port, metrics_port=free_port()
        )
        triton = TritonProcess(cmd, 0, grpc_port, 0, log=tmp_path / "triton.log")
        server.wait_up(path="/openai/v1/models", status=200)
        assert requests.get(f"{server.url}/openai/v1/models", timeout=30).json()["data"] == []
    finally:
        server.stop()
        if triton is not None:
            triton.stop()
