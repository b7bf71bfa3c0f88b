"""What the engines refuse or honour, through the real stack: Triton's generate endpoint and the frontend.

`logit_bias` steers greedy output (it was a 500 everywhere), `max_tokens` beyond the context
is a 400 stating the limit on both engines, a seed beyond 64 bits is a 400 that leaves
nothing in the engine (it was a 500 that left an entry behind), and vLLM's own refusals
name their field.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.integration.test_cancellation import engine_requests, wait_for

VLLM, HF, T5 = "smollm2", "smollm2-hf", "t5-tiny"
PROMPT = "The capital of France is"


def generate(triton, sampling: dict, model: str = VLLM, prompt: str = PROMPT) -> requests.Response:
    body = {"text_input": prompt, "exclude_input_in_output": True, "sampling_parameters": json.dumps(sampling)}
    return requests.post(f"{triton.http_url}/v2/models/{model}/generate", json=body, timeout=120)


def model_error(r: requests.Response) -> dict:
    """The model's structured error ({"message", "param"}) as Triton's generate endpoint returns it."""
    assert r.status_code == 400, r.text
    return json.loads(r.json()["error"])


def openai(frontend, endpoint: str, body: dict) -> requests.Response:
    path = {"completions": "completions", "chat": "chat/completions"}[endpoint]
    if endpoint == "chat":
        body = {"messages": [{"role": "user", "content": PROMPT}], **body}
    else:
        body = {"prompt": PROMPT, **body}
    return requests.post(f"{frontend.url}/openai/v1/{path}", json=body, timeout=120)


def openai_error(r: requests.Response) -> dict:
    assert r.status_code == 400, r.text
    return r.json()["error"]


def output(r: requests.Response, endpoint: str) -> str:
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    return choice["message"]["content"] if endpoint == "chat" else choice["text"]


@pytest.fixture(scope="module")
def banana(tokenizer) -> int:
    return tokenizer.encode(" banana", add_special_tokens=False)[0]


GREEDY3 = {"temperature": 0, "max_tokens": 3}


def test_logit_bias_steers_greedy_output_on_triton(triton, tokenizer, banana):
    plain = generate(triton, GREEDY3).json()["text_output"]
    biased = generate(triton, {**GREEDY3, "logit_bias": {str(banana): 100}}).json()["text_output"]
    assert biased == tokenizer.decode([banana] * 3) != plain


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_logit_bias_steers_greedy_output_on_the_frontend(frontend, banana, endpoint):
    body = {"model": VLLM, **GREEDY3}
    plain = output(openai(frontend, endpoint, body), endpoint)
    biased = output(openai(frontend, endpoint, {**body, "logit_bias": {str(banana): 100}}), endpoint)
    assert biased.count("banana") == 3 and "banana" not in plain


def test_out_of_vocabulary_logit_bias_names_it(triton, frontend):
    error = model_error(generate(triton, {**GREEDY3, "logit_bias": {"70000": 5}}))
    assert error["param"] == "sampling_parameters.logit_bias" and "out-of-vocab" in error["message"]
    for endpoint in ("completions", "chat"):
        error = openai_error(openai(frontend, endpoint, {"model": VLLM, **GREEDY3, "logit_bias": {"70000": 5}}))
        assert error["param"] == "logit_bias" and "70000" in error["message"]


def test_a_logit_bias_key_that_is_no_token_id_names_it(triton, frontend):
    error = model_error(generate(triton, {**GREEDY3, "logit_bias": {"banana": 5}}))
    assert error["param"] == "sampling_parameters.logit_bias" and "token ids" in error["message"]
    for endpoint in ("completions", "chat"):
        error = openai_error(openai(frontend, endpoint, {"model": VLLM, **GREEDY3, "logit_bias": {"banana": 5}}))
        assert error["param"] == "logit_bias" and "token ids" in error["message"]


def test_the_transformers_engine_refuses_logit_bias_by_name(triton, frontend):
    error = model_error(generate(triton, {**GREEDY3, "logit_bias": {"5": 5}}, model=HF))
    assert error["param"] == "sampling_parameters.logit_bias" and "huggingface" in error["message"]
    error = openai_error(openai(frontend, "completions", {"model": HF, **GREEDY3, "logit_bias": {"5": 5}}))
    assert error["param"] == "logit_bias"


@pytest.mark.parametrize("model", [VLLM, HF, T5])
def test_max_tokens_beyond_the_context_is_refused_on_triton(triton, model):
    error = model_error(generate(triton, {"max_tokens": 100000}, model=model))
    assert error["param"] == "sampling_parameters.max_tokens"
    assert "maximum context length is" in error["message"] and "100000" in error["message"]


def test_the_limit_counts_the_prompt(triton, tokenizer):
    prompt_tokens = len(tokenizer(PROMPT).input_ids)
    error = model_error(generate(triton, {"max_tokens": 8192 - prompt_tokens + 1}))
    assert error["message"] == (
        f"This model's maximum context length is 8192 tokens. However, you requested 8193 tokens "
        f"({prompt_tokens} in the prompt, {8193 - prompt_tokens} in the completion). "
        "Please reduce the length of the prompt or completion."
    )


@pytest.mark.parametrize(
    ("model", "endpoint", "field"),
    [
        (VLLM, "completions", "max_tokens"),
        (VLLM, "chat", "max_tokens"),
        (VLLM, "chat", "max_completion_tokens"),
        (HF, "completions", "max_tokens"),
        (HF, "chat", "max_completion_tokens"),
    ],
)
def test_max_tokens_beyond_the_context_is_refused_on_the_frontend(frontend, model, endpoint, field):
    error = openai_error(openai(frontend, endpoint, {"model": model, field: 100000}))
    assert error["param"] == field and "maximum context length is 8192 tokens" in error["message"]
    assert ("in the messages" if endpoint == "chat" else "in the prompt") in error["message"]


@pytest.mark.parametrize("model", [VLLM, HF])
def test_no_max_tokens_still_means_up_to_the_context(frontend, model):
    # A stop at the first space ends it at once; without it this would run to the context's end.
    r = openai(frontend, "completions", {"model": model, "temperature": 0, "stop": [" "]})
    assert r.status_code == 200, r.text


def test_a_seed_beyond_64_bits_is_refused_and_leaves_nothing_behind(triton, frontend):
    # Earlier tests' requests may still be finishing: wait for an idle engine, so the check below
    # sees only what these refusals could leave.
    assert wait_for(lambda: engine_requests(triton) == 0, timeout=120), "an earlier request stayed in the engine"
    error = model_error(generate(triton, {**GREEDY3, "seed": 2**64}))
    assert error["param"] == "sampling_parameters.seed" and "64-bit" in error["message"]
    for endpoint, seed in (("completions", -(2**64)), ("chat", 2**64)):
        error = openai_error(openai(frontend, endpoint, {"model": VLLM, **GREEDY3, "seed": seed}))
        assert error["param"] == "seed"
    assert wait_for(lambda: engine_requests(triton) == 0), "a refused request stayed in the engine"
    assert generate(triton, {**GREEDY3, "seed": 2**63 - 1}).status_code == 200


@pytest.mark.parametrize(
    ("sampling", "param"),
    [
        ({"top_k": -5}, "sampling_parameters.top_k"),  # vLLM's message carries no parameter
        ({"min_tokens": 5, "max_tokens": 2}, "sampling_parameters.min_tokens"),
        ({"repetition_detection": {"max_size": 3}}, "sampling_parameters.repetition_detection.max_size"),
        ({"stop_token_ids": [70000]}, "sampling_parameters.stop_token_ids"),  # found in add_request
    ],
)
def test_vllms_refusals_name_their_field(triton, sampling, param):
    assert model_error(generate(triton, sampling))["param"] == param


def test_top_k_out_of_range_names_top_k_on_the_frontend(frontend):
    error = openai_error(openai(frontend, "completions", {"model": VLLM, "max_tokens": 2, "top_k": -5}))
    assert error["param"] == "top_k" and error["message"].startswith("top_k: top_k must be")
