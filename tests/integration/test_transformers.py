"""The transformers engine through a real tritonserver: greedy output equals transformers'
own `generate` token for token, for a decoder-only model and an encoder-decoder one, in
float32 and (on a CPU with bf16 instructions) in bfloat16, the dtype such a CPU serves."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import pytest
import requests

from tests.clients import GrpcStream, text
from tests.integration.test_cancellation import LONG, wait_for
from tests.servers import engine_requests
from triton_llm import hf_loading

MAX_TOKENS = 24
PROMPTS = {
    "smollm2-hf": ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a land far away,"],
    "t5-tiny": ["the cat and the dog went to the house", "translate this to french", "in the beginning"],
}
CHAT = [{"role": "user", "content": "Write a haiku about the sea."}]
BF16 = "smollm2-hf-bf16"  # smollm2-hf in bfloat16 (conftest)
# A longer prompt (121 tokens): more positions for bfloat16's rounding to tell kernels apart.
ESSAY = (
    "The history of computing is a story of abstraction. Early machines were programmed by rewiring panels and "
    "setting switches; each new problem meant a new physical arrangement. Stored programs changed that: "
    "instructions became data, held in the same memory as the numbers they worked on. Assemblers gave names to "
    "instructions, compilers gave names to whole computations, and operating systems hid the machine behind "
    "files, processes and virtual memory. Each layer let people forget details that had once consumed them, and "
    "each layer also brought new failures, because the details had not gone away; they had only moved out of "
    "sight. In short,"
)
RETURNS = {"return_num_input_tokens": True, "return_num_output_tokens": True, "return_finish_reason": True}


@pytest.fixture(scope="session")
def reference(model_dir, t5_dir):
    """transformers' own greedy `generate`, one prompt at a time, in the served dtype, with the
    attention implementation the engine follows on a CPU (eager: engines/hf/attention.py)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    paths = {
        "smollm2-hf": (model_dir, AutoModelForCausalLM, torch.float32),
        BF16: (model_dir, AutoModelForCausalLM, torch.bfloat16),
        "t5-tiny": (t5_dir, AutoModelForSeq2SeqLM, torch.float32),
    }

    @cache
    def load(model: str):
        path, cls, dtype = paths[model]
        lm = cls.from_pretrained(path, dtype=dtype, attn_implementation="eager").eval()
        return AutoTokenizer.from_pretrained(path), lm

    @cache
    def run(model: str, prompt: str | None = None, messages: str | None = None, max_tokens: int = MAX_TOKENS):
        tokenizer, lm = load(model)
        if messages is not None:
            ids = tokenizer.apply_chat_template(json.loads(messages), add_generation_prompt=True, return_dict=True)
            ids = list(ids["input_ids"])
        else:
            ids = tokenizer(prompt).input_ids
        out = lm.generate(torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=False)[0].tolist()
        generated = out[1:] if model == "t5-tiny" else out[len(ids) :]  # T5: drop the start token
        eos = lm.generation_config.eos_token_id
        stopped = bool(generated) and generated[-1] == eos
        return {
            "text": tokenizer.decode(generated[:-1] if stopped else generated, skip_special_tokens=True),
            "num_input_tokens": len(ids),
            "num_output_tokens": len(generated),
            "finish_reason": "stop" if stopped else "length",
        }

    return run


def generate(triton, model: str, body: dict) -> requests.Response:
    return requests.post(f"{triton.http_url}/v2/models/{model}/generate", json=body, timeout=120)


def stream(triton, model: str, values: dict) -> list[dict]:
    s = GrpcStream(triton.grpc_url)
    try:
        s.send(model, {"stream": True, **values, **RETURNS})
        return s.collect()
    finally:
        s.close()


CASES = [(model, i) for model in PROMPTS for i in range(3)]


@pytest.mark.parametrize("model,i", CASES)
def test_greedy_equals_transformers_generate(triton, reference, model, i):
    prompt = PROMPTS[model][i]
    body = {"text_input": prompt, "exclude_input_in_output": True, **RETURNS}
    r = generate(triton, model, {**body, "parameters": {"temperature": 0, "max_tokens": MAX_TOKENS}})
    assert r.status_code == 200, r.text
    out, ref = r.json(), reference(model, prompt)
    assert out["text_output"] == ref["text"]
    assert out["num_input_tokens"] == ref["num_input_tokens"]
    assert out["num_output_tokens"] == ref["num_output_tokens"]
    assert out["finish_reason"] == ref["finish_reason"]


@pytest.mark.skipif(hf_loading.cpu_dtype() != "bfloat16", reason="this CPU has no bf16 instructions")
@pytest.mark.parametrize("prompt", [*PROMPTS["smollm2-hf"], ESSAY, CHAT])
def test_greedy_in_bfloat16_equals_transformers_generate(triton, reference, prompt):
    """bfloat16 rounds every step: a kernel that sums in another order soon picks another token."""
    chat = isinstance(prompt, list)
    given = {"messages": json.dumps(prompt)} if chat else {"text_input": prompt}
    params = {"temperature": 0, "max_tokens": 48}
    out = generate(triton, BF16, {**given, "exclude_input_in_output": True, **RETURNS, "parameters": params}).json()
    ref = reference(BF16, messages=given["messages"], max_tokens=48) if chat else reference(BF16, prompt, max_tokens=48)
    assert (out["text_output"], out["num_output_tokens"]) == (ref["text"], ref["num_output_tokens"])


@pytest.mark.parametrize("model", PROMPTS)
def test_streamed_deltas_equal_transformers_generate(triton, reference, model):
    prompt = PROMPTS[model][2]
    chunks = stream(
        triton, model, {"text_input": prompt, "sampling_parameters": {"temperature": 0, "max_tokens": MAX_TOKENS}}
    )
    ref = reference(model, prompt)
    assert len(chunks) > 1
    assert "".join(text(c) for c in chunks) == ref["text"]
    assert sum(int(c["num_output_tokens"][0]) for c in chunks) == ref["num_output_tokens"]
    assert [text(c, "finish_reason") for c in chunks][-1] == ref["finish_reason"]
    assert all(text(c, "finish_reason") == "None" for c in chunks[:-1])


def test_chat_messages_equal_transformers_generate(triton, reference):
    messages = json.dumps(CHAT)
    body = {"messages": messages, "exclude_input_in_output": True, **RETURNS}
    out = generate(triton, "smollm2-hf", {**body, "parameters": {"temperature": 0, "max_tokens": MAX_TOKENS}}).json()
    ref = reference("smollm2-hf", messages=messages)
    assert (out["text_output"], out["num_input_tokens"], out["num_output_tokens"]) == (
        ref["text"], ref["num_input_tokens"], ref["num_output_tokens"],
    )  # fmt: skip


@pytest.mark.parametrize("model", PROMPTS)
def test_concurrent_requests_give_the_texts_they_give_alone(triton, reference, model):
    prompts = [PROMPTS[model][i % 3] for i in range(8)]
    params = {"temperature": 0, "max_tokens": MAX_TOKENS}

    def one(i: int) -> str:
        if i % 2:  # half streamed, half not, joining at different times
            return "".join(
                text(c) for c in stream(triton, model, {"text_input": prompts[i], "sampling_parameters": params})
            )
        body = {"text_input": prompts[i], "exclude_input_in_output": True, "parameters": params}
        return generate(triton, model, body).json()["text_output"]

    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(one, range(8)))
    assert texts == [reference(model, p)["text"] for p in prompts]


def test_stop_string_ends_the_text_before_it(triton, reference):
    ref = reference("smollm2-hf", PROMPTS["smollm2-hf"][2])["text"]
    stop = ref.split()[3]
    params = {"temperature": 0, "max_tokens": MAX_TOKENS, "stop": [stop]}
    # A list does not fit the generate endpoint's `parameters`: the JSON input carries it.
    body = {"text_input": PROMPTS["smollm2-hf"][2], "exclude_input_in_output": True, **RETURNS}
    out = generate(triton, "smollm2-hf", {**body, "sampling_parameters": json.dumps(params)}).json()
    assert out["text_output"] == ref[: ref.index(stop)]
    assert out["finish_reason"] == "stop"
    streamed = stream(triton, "smollm2-hf", {"text_input": PROMPTS["smollm2-hf"][2], "sampling_parameters": params})
    assert "".join(text(c) for c in streamed) == ref[: ref.index(stop)]


def test_n_samples_come_back_as_separate_choices(triton):
    params = {"temperature": 0.8, "max_tokens": 8, "n": 3, "ignore_eos": True}
    out = stream(triton, "smollm2-hf", {"text_input": PROMPTS["smollm2-hf"][0], "sampling_parameters": params})
    totals = [sum(int(c["num_output_tokens"][k]) for c in out) for k in range(3)]
    assert totals == [8, 8, 8]
    # Each choice ends in its own chunk, the others' entries there are empty.
    reasons = [[text(c, "finish_reason", k) for c in out if text(c, "finish_reason", k) != "None"] for k in range(3)]
    assert reasons == [["length"]] * 3


@pytest.mark.parametrize(
    "field,value",
    [("seed", 1), ("logprobs", 1), ("presence_penalty", 0.5), ("min_tokens", 3), ("no_such_field", 1), ("top_p", 0)],
)
def test_fields_the_engine_cannot_honour_are_refused_by_name(triton, field, value):
    body = {"text_input": "Hi", "parameters": {"max_tokens": 4, field: value}}
    r = generate(triton, "smollm2-hf", body)
    assert r.status_code == 400
    assert f"sampling_parameters.{field}" in r.json()["error"]


def test_neutral_values_of_unsupported_fields_are_accepted(triton):
    body = {"text_input": "Hi", "parameters": {"max_tokens": 4, "presence_penalty": 0, "repetition_penalty": 1.0}}
    assert generate(triton, "smollm2-hf", body).status_code == 200


@pytest.mark.parametrize("model", PROMPTS)
def test_cancelled_stream_frees_its_slot(triton, model):
    s = GrpcStream(triton.grpc_url)
    s.send(model, {"text_input": PROMPTS[model][0], "stream": True, "sampling_parameters": {**LONG, "max_tokens": 400}})
    s.next()  # generating
    assert wait_for(lambda: engine_requests(triton.metrics_url, model) == 1)
    s.close(cancel=True)
    assert wait_for(lambda: engine_requests(triton.metrics_url, model) == 0)
    r = generate(triton, model, {"text_input": PROMPTS[model][1], "parameters": {"max_tokens": 2}})
    assert r.status_code == 200


def test_openai_sdk_chat_on_the_transformers_engine(frontend, reference):
    import openai

    client = openai.OpenAI(base_url=f"{frontend.url}/openai/v1", api_key="unused", max_retries=0)
    assert {"smollm2-hf", "t5-tiny"} <= {m.id for m in client.models.list().data}
    out = client.chat.completions.create(model="smollm2-hf", messages=CHAT, max_tokens=MAX_TOKENS, temperature=0)
    ref = reference("smollm2-hf", messages=json.dumps(CHAT))
    assert out.choices[0].message.content == ref["text"]
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (ref["num_input_tokens"], ref["num_output_tokens"])
    streamed = client.chat.completions.create(
        model="smollm2-hf", messages=CHAT, max_tokens=MAX_TOKENS, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == ref["text"]
    with pytest.raises(openai.BadRequestError, match="seed"):
        client.chat.completions.create(model="smollm2-hf", messages=CHAT, max_tokens=4, temperature=1, seed=3)


# Over 2048 tokens, longer than max_num_batched_tokens (default 2048): prefilled in pieces.
CHAPTER = (
    "Chapter {}. The river rose again that spring, and the village on its bank argued, as every year, about whether "
    "to build the wall higher or to move the houses up the hill where the old orchard stood."
)
SAGA = " ".join(CHAPTER.format(n) for n in range(1, 51)) + " The village finally decided"


def test_a_prompt_longer_than_max_num_batched_tokens_gives_generate_s_text_beside_running_requests(triton, reference):
    """Its pieces are prefilled between the decode steps of the others (float32: generate's tokens exactly)."""
    prompts = [PROMPTS["smollm2-hf"][2], SAGA, PROMPTS["smollm2-hf"][0]]
    params = {"temperature": 0, "max_tokens": MAX_TOKENS}

    def one(prompt: str) -> dict:
        body = {"text_input": prompt, "exclude_input_in_output": True, **RETURNS, "parameters": params}
        return generate(triton, "smollm2-hf", body).json()

    with ThreadPoolExecutor(3) as pool:
        outputs = list(pool.map(one, prompts))
    refs = [reference("smollm2-hf", p) for p in prompts]
    assert refs[1]["num_input_tokens"] > 2048
    assert [(o["text_output"], o["num_input_tokens"]) for o in outputs] == [
        (r["text"], r["num_input_tokens"]) for r in refs
    ]
