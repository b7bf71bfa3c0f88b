"""vLLM's extra request fields through the frontend, on the real stack: the prompt's logprobs,
structured outputs, continuous usage, chat template variables; and, on the transformers
engine, a 400 naming each field it cannot honour and the engine, never a silent drop."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.conftest import PROMPTS

CHAT = [{"role": "user", "content": "Name a colour."}]


def post(frontend, path: str, body: dict) -> requests.Response:
    return requests.post(f"{frontend.url}/openai/v1/{path}", json=body, timeout=120)


def chunks(frontend, path: str, body: dict) -> list[dict]:
    r = post(frontend, path, {**body, "stream": True})
    return [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]


def test_prompt_logprobs_are_returned_where_vllm_puts_them(frontend, tokenizer):
    n_prompt = len(tokenizer(PROMPTS[0]).input_ids)
    body = {"model": "smollm2", "prompt": PROMPTS[0], "prompt_logprobs": 2, "max_tokens": 2, "temperature": 0}
    prompt_logprobs = post(frontend, "completions", body).json()["choices"][0]["prompt_logprobs"]
    assert len(prompt_logprobs) == n_prompt and prompt_logprobs[0] is None
    for position in prompt_logprobs[1:]:
        # The prompt's own token first, then up to 2 candidates (as vLLM: {id: Logprob}).
        assert 1 <= len(position) <= 3 and all(v["logprob"] <= 0 and "decoded_token" in v for v in position.values())
    chat = {"model": "smollm2", "messages": CHAT, "prompt_logprobs": 0, "max_tokens": 2}
    out = post(frontend, "chat/completions", chat).json()
    assert len(out["prompt_logprobs"]) == out["usage"]["prompt_tokens"] and out["prompt_logprobs"][0] is None
    r = post(frontend, "completions", {**body, "stream": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt_logprobs"


@pytest.mark.parametrize(
    ("structured", "check"),
    [
        ({"choice": ["yes", "no"]}, lambda text: text in ("yes", "no")),
        ({"regex": "[0-9]{3}"}, lambda text: re.fullmatch("[0-9]{3}", text)),
        ({"grammar": 'root ::= "cat" | "dog"'}, lambda text: text in ("cat", "dog")),
        ({"json": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}},
                   "required": ["n"], "additionalProperties": False}, "disable_any_whitespace": True},
         lambda text: json.loads(text)["n"] in range(10)),
    ],
    ids=["choice", "regex", "grammar", "json"],
)  # fmt: skip
def test_structured_outputs_on_completions_and_chat(frontend, structured, check):
    body = {"model": "smollm2", "prompt": "Answer:", "structured_outputs": structured, "max_tokens": 20}
    out = post(frontend, "completions", {**body, "temperature": 0}).json()
    assert check(out["choices"][0]["text"]), out
    body = {"model": "smollm2", "messages": CHAT, "structured_outputs": structured, "max_tokens": 20}
    out = post(frontend, "chat/completions", body).json()
    if out["choices"][0]["finish_reason"] == "length" and "json" in structured:
        # Sampled: the grammar allows any whitespace between tokens (vLLM's xgrammar backend takes
        # disable_any_whitespace from the engine's config, not the request), so a run of newlines
        # can reach max_tokens, and a cut output is no whole document.
        assert out["usage"]["completion_tokens"] == 20, out
    else:
        assert check(out["choices"][0]["message"]["content"]), out


def test_a_structured_output_vllm_cannot_compile_is_a_400(frontend):
    body = {"model": "smollm2", "prompt": "x", "structured_outputs": {"regex": "("}, "max_tokens": 2}
    r = post(frontend, "completions", body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "structured_outputs", r.text
    assert post(frontend, "completions", {"model": "smollm2", "prompt": "x", "max_tokens": 1}).status_code == 200


@pytest.mark.parametrize("model", ["smollm2", "smollm2-hf"])
def test_continuous_usage_is_in_every_chunk(frontend, model):
    options = {"include_usage": True, "continuous_usage_stats": True}
    body = {"model": model, "prompt": "Count:", "max_tokens": 6, "ignore_eos": True, "stream_options": options}
    sent = chunks(frontend, "completions", body)
    counts = [c["usage"]["completion_tokens"] for c in sent[:-1]]
    assert all("usage" in c for c in sent) and counts == sorted(counts) and counts[-1] == 6
    assert sent[-1]["choices"] == [] and sent[-1]["usage"]["completion_tokens"] == 6
    chat = chunks(frontend, "chat/completions", {"model": model, "messages": CHAT, **{
        k: v for k, v in body.items() if k not in ("model", "prompt")}})  # fmt: skip
    assert chat[0]["usage"]["completion_tokens"] == 0 and chat[-2]["usage"]["completion_tokens"] == 6


@pytest.mark.parametrize("model", ["smollm2", "smollm2-hf"])
def test_chat_template_kwargs_reach_the_template(frontend, model):
    body = {"model": model, "messages": CHAT, "max_tokens": 1}
    usual = post(frontend, "chat/completions", body).json()["usage"]["prompt_tokens"]
    without = {**body, "chat_template_kwargs": {"add_generation_prompt": False}}
    fewer = post(frontend, "chat/completions", without).json()["usage"]["prompt_tokens"]
    assert fewer < usual  # "<|im_start|>assistant\n" left out
    r = post(frontend, "chat/completions", {**body, "chat_template_kwargs": {"tokenize": True}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "chat_template_kwargs", r.text


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("completions", {"prompt_logprobs": 1}, "prompt_logprobs"),
    ],
)
def test_what_transformers_cannot_honour_is_a_400_naming_field_and_engine(frontend, path, fields, param):
    body = {"model": "smollm2-hf", **({"prompt": "x"} if path == "completions" else {"messages": CHAT})}
    r = post(frontend, path, {**body, **fields, "max_tokens": 2})
    error = r.json()["error"]
    assert r.status_code == 400 and error["param"] == param and "huggingface backend" in error["message"], error


ODD_STRUCTURES = [
    {"json_object": False},
    {"json": "not json"},
    {"json": {"type": 5}},
    {"grammar": "x"},
    {"structural_tag": "x"},
    {"choice": [""]},
    {"regex": "a", "whitespace_pattern": "("},
]


@pytest.mark.parametrize("structured", ODD_STRUCTURES, ids=[json.dumps(s) for s in ODD_STRUCTURES])
def test_odd_structured_outputs_are_never_a_server_error(frontend, structured):
    body = {"model": "smollm2", "prompt": "x", "structured_outputs": structured, "max_tokens": 2}
    r = post(frontend, "completions", body)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["error"]["param"] == "structured_outputs", r.text
    assert post(frontend, "completions", {"model": "smollm2", "prompt": "x", "max_tokens": 1}).status_code == 200


def test_prompt_logprobs_beyond_the_engines_max_logprobs_is_a_400(frontend):
    # -1 asks for the whole vocabulary; vLLM's engine allows max_logprobs (20) by default.
    body = {"model": "smollm2", "prompt": "x", "prompt_logprobs": -1, "max_tokens": 1}
    r = post(frontend, "completions", body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt_logprobs", r.text
