"""vLLM's /tokenize and /detokenize through the frontend and a real tritonserver, on both engines:
the ids are the model's own tokenizer's (transformers) and what the engine counts for the same
prompt (usage.prompt_tokens); Triton's generate endpoint takes `tokenize_only` as any client would."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import CHAT, PROMPTS
from tests.servers import ROOT

MODELS = ["smollm2", "smollm2-hf"]
TEMPLATE = (ROOT / "model_repository" / "smollm2" / "1" / "chat_template.jinja").read_text()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def post(frontend, path: str, body: dict) -> requests.Response:
    return requests.post(f"{frontend.url}/openai/{path}", json=body, timeout=120)


def ok(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def refused(response: requests.Response, param: str, status: int = 400) -> str:
    error = response.json()["error"]
    assert response.status_code == status and error["param"] == param, response.text
    return error["message"]


@pytest.mark.parametrize("model", MODELS)
def test_a_prompt_is_the_tokenizers_ids_and_the_engines_count(frontend, tokenizer, model):
    for prompt in PROMPTS:
        out = ok(post(frontend, "tokenize", {"model": model, "prompt": prompt}))
        assert out["tokens"] == tokenizer(prompt).input_ids and out["count"] == len(out["tokens"])
        assert out["max_model_len"] == 8192 and out["token_strs"] is None
        used = ok(post(frontend, "v1/completions", {"model": model, "prompt": prompt, "max_tokens": 1}))
        assert used["usage"]["prompt_tokens"] == out["count"]
        assert ok(post(frontend, "detokenize", {"model": model, "tokens": out["tokens"]})) == {"prompt": prompt}


@pytest.mark.parametrize("model", MODELS)
def test_token_strings_and_special_tokens(frontend, tokenizer, model):
    text = "<|im_start|>user\nHello world<|im_end|>"
    body = {"model": model, "prompt": text, "return_token_strs": True, "add_special_tokens": False}
    out = ok(post(frontend, "tokenize", body))
    assert out["tokens"] == tokenizer(text, add_special_tokens=False).input_ids
    assert out["token_strs"] == tokenizer.convert_ids_to_tokens(out["tokens"])
    # Special tokens are decoded as they are, as vLLM's /detokenize does.
    assert ok(post(frontend, "detokenize", {"model": model, "tokens": out["tokens"]}))["prompt"] == text


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tools", [None, [WEATHER]], ids=["plain", "tools"])
def test_messages_are_the_templates_ids_and_the_chats_count(frontend, tokenizer, model, tools):
    extra = {"tools": tools} if tools else {}
    for generation_prompt in (True, False):
        body = {"model": model, "messages": CHAT, "add_generation_prompt": generation_prompt, **extra}
        out = ok(post(frontend, "tokenize", body))
        rendered = tokenizer.apply_chat_template(
            CHAT, tools=tools, chat_template=TEMPLATE, add_generation_prompt=generation_prompt, tokenize=False
        )
        assert out["tokens"] == tokenizer(rendered, add_special_tokens=False).input_ids, generation_prompt
        chat = {**body, "max_tokens": 1}
        assert ok(post(frontend, "v1/chat/completions", chat))["usage"]["prompt_tokens"] == out["count"]
    prompt = ok(post(frontend, "detokenize", {"model": model, "tokens": out["tokens"]}))["prompt"]
    assert prompt == rendered and ("get_weather" in prompt) == bool(tools)


def test_both_engines_answer_alike(frontend):
    body = {"messages": CHAT, "tools": [WEATHER], "return_token_strs": True}
    assert ok(post(frontend, "tokenize", {"model": MODELS[0], **body})) == ok(
        post(frontend, "tokenize", {"model": MODELS[1], **body})
    )


@pytest.mark.parametrize("model", MODELS)
def test_refusals_name_the_field(frontend, model):
    refused(post(frontend, "tokenize", {"model": model, "prompt": ""}), "prompt")
    message = refused(post(frontend, "detokenize", {"model": model, "tokens": [1, 10**6]}), "tokens")
    assert message == "tokens: Token id 1000000 is out of vocabulary"
    refused(post(frontend, "detokenize", {"model": model, "tokens": [-1]}), "tokens.0")
    refused(
        post(frontend, "tokenize", {"model": model, "messages": [{"role": "wizard", "content": "x"}]}),
        "messages.0.role",
    )
    body = {"model": model, "messages": CHAT, "add_generation_prompt": False, "continue_final_message": True}
    assert "final assistant message" in refused(post(frontend, "tokenize", body), "messages")


def test_models_that_cannot_tokenize(frontend):
    refused(post(frontend, "tokenize", {"model": "nope", "prompt": "Hi"}), "model", 404)
    assert "does not support" in refused(post(frontend, "tokenize", {"model": "minilm", "prompt": "Hi"}), "model")
    # Several generation models are served: which one is the client's to say.
    refused(post(frontend, "detokenize", {"tokens": [1]}), "model")


def test_tritons_generate_endpoint_takes_tokenize_only(triton, tokenizer):
    url = f"{triton.http_url}/v2/models/smollm2-hf/generate"
    out = requests.post(url, json={"text_input": PROMPTS[0], "tokenize_only": True}, timeout=60).json()
    ids = tokenizer(PROMPTS[0]).input_ids
    assert out["prompt_token_ids"] == ids and out["num_input_tokens"] == len(ids) and out["max_model_len"] == 8192
    back = requests.post(url, json={"input_ids": ids, "tokenize_only": True}, timeout=60).json()
    assert back["text_output"] == PROMPTS[0]


@pytest.mark.parametrize("model", MODELS)
def test_tokenize_answers_while_the_engine_generates(frontend, tokenizer, model):
    """Concurrent tokenize requests (the tokenizer off the engine's loop) beside a streamed
    chat whose parsers use the same tokenizer: all exact, none waiting for the generation."""
    chat = {"model": model, "messages": CHAT, "tools": [WEATHER], "stream": True, "max_tokens": 64}
    texts = [f"{PROMPTS[i % 3]} {i}" for i in range(32)]
    with ThreadPoolExecutor(16) as pool:
        streaming = pool.submit(lambda: requests.post(f"{frontend.url}/openai/v1/chat/completions", json=chat).text)
        started = time.monotonic()
        answers = list(pool.map(lambda t: ok(post(frontend, "tokenize", {"model": model, "prompt": t})), texts))
        elapsed = time.monotonic() - started
        assert "[DONE]" in streaming.result(timeout=120)
    assert [a["tokens"] for a in answers] == [tokenizer(t).input_ids for t in texts]
    print(f"{model}: 32 tokenize requests beside a generation in {elapsed:.2f} s")
