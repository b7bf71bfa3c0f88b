"""Token-id prompts, truncation and token ids on both engines, through the frontend and
through Triton directly; echo with logprobs returns the prompt's tokens (defect 7)."""

from __future__ import annotations

import json

import numpy as np
import openai
import pytest
import requests
import tritonclient.grpc as grpcclient

from tests.clients import GrpcStream, grpc_inputs, text
from tests.conftest import PROMPTS

MODELS = ["smollm2", "smollm2-hf"]
GREEDY = {"temperature": 0, "max_tokens": 8}


@pytest.fixture(scope="module")
def client(frontend) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{frontend.url}/openai/v1", api_key="unused", max_retries=0)


def post(frontend, path: str, body: dict) -> requests.Response:
    return requests.post(f"{frontend.url}/openai/v1/{path}", json=body, timeout=120)


@pytest.mark.parametrize("model", MODELS)
def test_token_ids_give_what_their_text_gives_with_exact_usage(client, tokenizer, model):
    ids = tokenizer(PROMPTS[0]).input_ids
    by_text = client.completions.create(model=model, prompt=PROMPTS[0], **GREEDY)
    by_ids = client.completions.create(model=model, prompt=ids, **GREEDY)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage.prompt_tokens == len(ids) == by_text.usage.prompt_tokens
    assert by_ids.usage.completion_tokens == by_text.usage.completion_tokens
    both = client.completions.create(model=model, prompt=[ids, ids[:3]], **GREEDY)
    assert [c.index for c in both.choices] == [0, 1] and both.choices[0].text == by_text.choices[0].text
    assert both.usage.prompt_tokens == len(ids) + 3


@pytest.mark.parametrize("model", MODELS)
def test_an_echo_of_token_ids_is_the_decoded_prompt(client, tokenizer, model):
    ids = tokenizer(PROMPTS[1]).input_ids
    out = client.completions.create(model=model, prompt=ids, echo=True, **GREEDY)
    assert out.choices[0].text.startswith(tokenizer.decode(ids))
    chunks = list(client.completions.create(model=model, prompt=ids, echo=True, stream=True, **GREEDY))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == out.choices[0].text


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("ids", [[1, 10**6], [2**62]], ids=["beyond-vocab", "beyond-32-bits"])
def test_out_of_vocabulary_ids_are_a_400_naming_prompt(frontend, model, ids):
    r = post(frontend, "completions", {"model": model, "prompt": ids, "max_tokens": 2})
    error = r.json()["error"]
    assert r.status_code == 400 and error["param"] == "prompt" and "out of vocabulary" in error["message"], error
    assert post(frontend, "completions", {"model": model, "prompt": [1, 2], "max_tokens": 1}).status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_truncation_keeps_the_last_tokens(frontend, tokenizer, model):
    ids = tokenizer(PROMPTS[2]).input_ids
    body = {"model": model, "prompt": PROMPTS[2], "truncate_prompt_tokens": 4, **GREEDY}
    cut = post(frontend, "completions", body).json()
    tail = post(frontend, "completions", {"model": model, "prompt": ids[-4:], **GREEDY}).json()
    assert cut["usage"]["prompt_tokens"] == 4 and cut["choices"][0]["text"] == tail["choices"][0]["text"]
    chat = {"model": model, "messages": [{"role": "user", "content": PROMPTS[2]}], "truncate_prompt_tokens": 5}
    assert post(frontend, "chat/completions", {**chat, "max_tokens": 1}).json()["usage"]["prompt_tokens"] == 5
    r = post(frontend, "completions", {**body, "truncate_prompt_tokens": 10**6})
    assert r.status_code == 400 and r.json()["error"]["param"] == "truncate_prompt_tokens", r.text


@pytest.mark.parametrize("model", MODELS)
def test_token_ids_are_returned_when_asked(frontend, tokenizer, model):
    ids = tokenizer(PROMPTS[0]).input_ids
    body = {"model": model, "prompt": PROMPTS[0], "return_token_ids": True, **GREEDY}
    out = post(frontend, "completions", body).json()
    choice = out["choices"][0]
    assert choice["prompt_token_ids"] == ids and len(choice["token_ids"]) == out["usage"]["completion_tokens"]
    assert tokenizer.decode(choice["token_ids"], skip_special_tokens=True) == choice["text"]
    r = requests.post(f"{frontend.url}/openai/v1/completions", json={**body, "stream": True}, timeout=120)
    chunks = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
    assert chunks[0]["choices"][0]["prompt_token_ids"] == ids
    assert all("prompt_token_ids" not in c["choices"][0] for c in chunks[1:])
    assert [t for c in chunks for t in c["choices"][0]["token_ids"]] == choice["token_ids"]
    chat = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "return_token_ids": True, **GREEDY}
    out = post(frontend, "chat/completions", chat).json()
    assert len(out["prompt_token_ids"]) == out["usage"]["prompt_tokens"]
    assert len(out["choices"][0]["token_ids"]) == out["usage"]["completion_tokens"]


def test_echo_with_logprobs_starts_with_the_prompts_tokens(frontend, tokenizer):
    """Defect 7: as OpenAI and vLLM, the prompt's tokens first, the first with null logprob."""
    prompt = PROMPTS[0]
    n_prompt = len(tokenizer(prompt).input_ids)
    body = {"model": "smollm2", "prompt": prompt, "echo": True, "logprobs": 2, **GREEDY}
    choice = post(frontend, "completions", body).json()["choices"][0]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == n_prompt + GREEDY["max_tokens"]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert all(v <= 0 for v in lp["token_logprobs"][1:]) and all(lp["top_logprobs"][1:])
    assert "".join(lp["tokens"]) == choice["text"] and choice["text"].startswith(prompt)
    assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:i]) for i in range(len(lp["tokens"]))]
    assert len(choice["prompt_logprobs"]) == n_prompt and choice["prompt_logprobs"][0] is None
    r = requests.post(f"{frontend.url}/openai/v1/completions", json={**body, "stream": True}, timeout=120)
    chunks = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
    streamed = {k: [v for c in chunks for v in c["choices"][0]["logprobs"][k]] for k in lp}
    assert streamed == lp


def test_echo_with_logprobs_on_transformers_names_what_it_cannot_do(frontend):
    body = {"model": "smollm2-hf", "prompt": "Hi", "echo": True, "logprobs": 1, "max_tokens": 2}
    error = post(frontend, "completions", body).json()["error"]
    assert error["param"] in ("logprobs", "prompt_logprobs") and "huggingface" in error["message"], error


@pytest.mark.parametrize("model", MODELS)
def test_triton_clients_send_input_ids_and_get_token_ids(triton, tokenizer, model):
    ids = tokenizer(PROMPTS[0]).input_ids
    values = {"stream": True, "sampling_parameters": GREEDY, "return_token_ids": True, "return_num_input_tokens": True}
    tensor = grpcclient.InferInput("input_ids", [len(ids)], "INT64")
    tensor.set_data_from_numpy(np.array(ids, dtype=np.int64))
    stream = GrpcStream(triton.grpc_url)
    try:
        stream.client.async_stream_infer(model, [tensor, *grpc_inputs(values)], enable_empty_final_response=True)
        responses = stream.collect()
    finally:
        stream.close()
    assert list(responses[0]["prompt_token_ids"]) == ids and int(responses[0]["num_input_tokens"][0]) == len(ids)
    generated = [t for r in responses for t in json.loads(text(r, "token_ids"))]
    assert len(generated) == GREEDY["max_tokens"] or tokenizer.eos_token_id in generated
    # Triton's generate endpoint takes the ids as a JSON list.
    body = {"input_ids": ids, "exclude_input_in_output": True, "parameters": GREEDY}
    r = requests.post(f"{triton.http_url}/v2/models/{model}/generate", json=body, timeout=120)
    assert r.status_code == 200 and r.json()["text_output"] == tokenizer.decode(generated, skip_special_tokens=True)
