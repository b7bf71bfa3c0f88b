"""The vLLM model through a real tritonserver: correctness against vLLM itself."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.clients import GrpcStream, text
from tests.conftest import CHAT, GREEDY, PROMPTS

MODEL = "smollm2"


def generate(triton, body: dict) -> requests.Response:
    return requests.post(f"{triton.http_url}/v2/models/{MODEL}/generate", json=body, timeout=120)


def grpc_generate(triton, values: dict) -> list[dict]:
    stream = GrpcStream(triton.grpc_url)
    try:
        stream.send(MODEL, values)
        return stream.collect()
    finally:
        stream.close()


@pytest.mark.parametrize("i", range(len(PROMPTS)))
def test_greedy_equals_vllm_offline(triton, vllm_reference, i):
    r = generate(triton, {"text_input": PROMPTS[i], "exclude_input_in_output": True, "parameters": GREEDY})
    assert r.status_code == 200, r.text
    assert r.json()["text_output"] == vllm_reference[i]["text"]


def test_non_streamed_output_prepends_the_prompt_by_default(triton, vllm_reference):
    r = generate(triton, {"text_input": PROMPTS[0], "parameters": GREEDY})
    assert r.json()["text_output"] == PROMPTS[0] + vllm_reference[0]["text"]


def test_chat_messages_apply_the_template_on_the_server(triton, vllm_reference):
    body = {"messages": json.dumps(CHAT), "exclude_input_in_output": True, "parameters": GREEDY}
    body.update(return_num_input_tokens=True, return_num_output_tokens=True)
    out = generate(triton, body).json()
    ref = vllm_reference[len(PROMPTS)]
    assert out["text_output"] == ref["text"]
    assert out["num_input_tokens"] == ref["num_input_tokens"]
    assert out["num_output_tokens"] == ref["num_output_tokens"]


def test_grpc_stream_deltas_concatenate_to_the_full_text_with_exact_counts(triton, vllm_reference, tokenizer):
    values = {
        "text_input": PROMPTS[1],
        "stream": True,
        "sampling_parameters": GREEDY,
        "return_num_input_tokens": True,
        "return_num_output_tokens": True,
        "return_finish_reason": True,
    }
    responses = grpc_generate(triton, values)
    assert len(responses) > 1, "streaming must send more than one response"
    assert "".join(text(r) for r in responses) == vllm_reference[1]["text"]
    assert sum(int(r["num_output_tokens"][0]) for r in responses) == vllm_reference[1]["num_output_tokens"]
    assert int(responses[0]["num_input_tokens"][0]) == len(tokenizer(PROMPTS[1]).input_ids)
    assert [text(r, "finish_reason") for r in responses[:-1]] == ["None"] * (len(responses) - 1)
    assert text(responses[-1], "finish_reason") == vllm_reference[1]["finish_reason"]


def test_grpc_non_streamed_is_one_response(triton, vllm_reference):
    values = {"text_input": PROMPTS[2], "exclude_input_in_output": True, "sampling_parameters": GREEDY}
    responses = grpc_generate(triton, values)
    assert len(responses) == 1
    assert text(responses[0]) == vllm_reference[2]["text"]


def test_generate_stream_endpoint_sends_sse(triton, vllm_reference):
    body = {"text_input": PROMPTS[0], "stream": True, "parameters": GREEDY}
    with requests.post(
        f"{triton.http_url}/v2/models/{MODEL}/generate_stream", json=body, stream=True, timeout=120
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: ") :]) for line in r.iter_lines(decode_unicode=True) if line]
    assert len(events) > 1
    assert "".join(e["text_output"] for e in events) == vllm_reference[0]["text"]


def test_n_choices_logprobs_and_cumulative_logprob(triton):
    sampling = {"n": 2, "temperature": 1.0, "seed": 7, "max_tokens": 8, "logprobs": 1}
    values = {
        "text_input": PROMPTS[0],
        "exclude_input_in_output": True,
        "sampling_parameters": sampling,
        "return_logprobs": True,
        "return_cumulative_logprob": True,
        "return_num_output_tokens": True,
    }
    [out] = grpc_generate(triton, values)
    assert out["text_output"].shape == (2,)
    assert list(out["num_output_tokens"]) == [8, 8]
    for i in range(2):
        steps = json.loads(text(out, "logprobs", i))
        assert len(steps) == 8
        # Each step holds the sampled token, plus the top-1 when they differ.
        assert all(1 <= len(step) <= 2 and all(d["logprob"] <= 0 for d in step.values()) for step in steps)
        assert out["cumulative_logprob"][i] <= 0


def test_concurrent_requests_all_finish(triton):
    body = {"text_input": "Count to ten:", "exclude_input_in_output": True}
    body["parameters"] = {"max_tokens": 16, "ignore_eos": True, "temperature": 0}
    body["return_num_output_tokens"] = True
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: generate(triton, body), range(8)))
    assert all(r.status_code == 200 for r in results)
    assert [r.json()["num_output_tokens"] for r in results] == [16] * 8


BAD_INPUTS = [
    ({"text_input": "Hi", "sampling_parameters": "{not json"}, "sampling_parameters", "not valid JSON"),
    ({"text_input": "Hi", "parameters": {"temprature": 0.5}}, "temprature", "unknown field"),
    ({"text_input": "Hi", "parameters": {"max_tokens": -3}}, "max_tokens", "at least 1"),
    ({"text_input": "Hi", "parameters": {"temperature": "hot"}}, "temperature", "must be float"),
    ({"text_input": ""}, "text_input", "must not be empty"),
    ({"text_input": "word " * 9000}, "text_input", "context length"),  # vLLM words it by version
    ({"messages": "[]"}, "messages", "non-empty"),
    ({"messages": '[{"role": "wizard", "content": "x"}]'}, "messages[0].role", "must be one of"),
]


@pytest.mark.parametrize(("body", "field", "problem"), BAD_INPUTS, ids=[b[1] + ":" + b[2] for b in BAD_INPUTS])
def test_bad_input_gets_an_error_naming_the_field_and_the_server_keeps_serving(triton, body, field, problem):
    endpoint = "generate_stream" if body.get("stream") else "generate"
    r = requests.post(f"{triton.http_url}/v2/models/{MODEL}/{endpoint}", json=body, timeout=120)
    message = r.json()["error"] if endpoint == "generate" else r.text
    assert r.status_code == 400 or "error" in message, message
    assert field in message and problem in message, message
    ok = generate(triton, {"text_input": "Hello", "parameters": {"max_tokens": 2}})
    assert ok.status_code == 200, ok.text


def test_bad_input_over_grpc_is_an_invalid_argument(triton):
    stream = GrpcStream(triton.grpc_url)
    try:
        stream.send(MODEL, {"text_input": "Hi", "sampling_parameters": {"max_tokens": 0}})
        with pytest.raises(Exception, match="max_tokens"):
            stream.next()
    finally:
        stream.close()


def test_many_concurrent_streams_finish_and_the_server_stays_up(triton):
    """Regression: polling is_cancelled() of a request whose final response was already
    sent read a freed response factory and crashed tritonserver under load."""
    values = {"text_input": "Count:", "stream": True, "return_num_output_tokens": True}
    values["sampling_parameters"] = {"max_tokens": 12, "ignore_eos": True}
    with ThreadPoolExecutor(48) as pool:
        results = list(pool.map(lambda _: grpc_generate(triton, values), range(96)))
    assert all(sum(int(r["num_output_tokens"][0]) for r in rs) == 12 for rs in results)
    assert requests.get(f"{triton.http_url}/v2/health/ready", timeout=10).status_code == 200
