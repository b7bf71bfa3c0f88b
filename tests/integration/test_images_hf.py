"""Images on the transformers engine (issue 28): the tiny Idefics3 (tests/tiny_vlm.py) forced onto
`backend: huggingface`, alone in a small stack of its own (`triton-llm serve`: Triton and the frontend;
ready in seconds). Greedy float32 output equals transformers' own `generate` on the processor's inputs
token for token, for one image chat, for image chats in flight together beside a text-only one, and
through Triton's `generate` with vllm_backend's `image` tensor; usage counts the image tokens as the
processor expands them. On a CPU with bf16 instructions, the same model served in bfloat16 (the dtype
such a CPU serves) equals `generate` in bfloat16 one request at a time, as the text models do
(test_transformers). The vLLM engine's side is test_images."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests import tiny_vlm
from tests.servers import free_port, make_repository, serve_command, serve_up
from tests.tiny_vlm import noise_image, png_bytes
from triton_llm import hf_loading

MODEL = "idefics3-tiny-hf"
BF16 = "idefics3-tiny-hf-bf16"
MAX_TOKENS = 8
IMAGES = [noise_image(48, 40, seed=0), noise_image(40, 56, seed=1), noise_image(30, 30, seed=2)]
B64 = [base64.b64encode(png_bytes(image)).decode() for image in IMAGES]


def image_part(k: int) -> dict:
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64[k]}"}}


# One image (split into tiles); two in one message; a small one after the text; no image at all.
CHATS = [
    [{"role": "user", "content": [image_part(0), {"type": "text", "text": "What is in this image?"}]}],
    [{"role": "user", "content": [image_part(0), image_part(1), {"type": "text", "text": "Compare them."}]}],
    [{"role": "user", "content": [{"type": "text", "text": "Look:"}, image_part(2)]}],
    [{"role": "user", "content": "Hello there, who are you?"}],
]


@dataclass
class Stack:
    url: str  # the frontend
    triton: str  # Triton's HTTP endpoint
    log: Path


@pytest.fixture(scope="module")
def stack(vlm_dir, tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("images-hf")
    # A copy of the demo's transformers entry; the model's own chat template, no tool parser.
    settings = {"model": str(vlm_dir), "backend": "huggingface", "dtype": "float32", "max_num_seqs": 4,
                "limit_mm_per_prompt": {"image": 2},
                "chat_template": None, "tool_call_parser": None, "enable_auto_tool_choice": False}  # fmt: skip
    repository = make_repository(tmp / "repo", {MODEL: settings, BF16: {**settings, "dtype": "bfloat16"}})
    http, grpc, metrics, port = free_port(), free_port(), free_port(), free_port()
    log = tmp / "serve.log"
    with serve_up(serve_command(repository, http, grpc, metrics, port), log, f"http://127.0.0.1:{port}/health/ready"):
        yield Stack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{http}", log)


def for_processor(messages: list[dict]) -> tuple[list[dict], list]:
    return tiny_vlm.for_processor(messages, lambda url: IMAGES[B64.index(url.split(",", 1)[1])])


@pytest.fixture(scope="module")
def reference(vlm_dir) -> list[dict]:
    """transformers' greedy `generate` of each chat in float32 with eager attention (the engine's grouped
    attention computes eager's bits: engines/hf/attention.py): token ids, text, prompt, prompt tokens."""
    import torch

    return generated(vlm_dir, torch.float32)


def generated(vlm_dir: Path, dtype) -> list[dict]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(vlm_dir)
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir, dtype=dtype, attn_implementation="eager")
    out = []
    for chat in CHATS:
        messages, images = for_processor(chat)
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=prompt, images=images or None, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)
        ids = [int(i) for i in generated[0, inputs["input_ids"].shape[1] :]]
        text = processor.decode(ids, skip_special_tokens=True)
        out.append({"prompt": prompt, "token_ids": ids, "text": text, "prompt_tokens": inputs["input_ids"].shape[1]})
    return out


def chat(stack: Stack, messages: list[dict], model: str = MODEL, **extra) -> requests.Response:
    body = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0.0, **extra}
    return requests.post(f"{stack.url}/openai/v1/chat/completions", json=body, timeout=120)


def check(answer: requests.Response, expected: dict) -> None:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["choices"][0]["token_ids"] == expected["token_ids"]
    assert body["choices"][0]["message"]["content"] == expected["text"]
    # The image's tokens as the processor expands them are prompt tokens, as vLLM's server counts them.
    assert body["usage"]["prompt_tokens"] == expected["prompt_tokens"]


def test_one_image_chat_equals_generate_token_for_token(stack, reference):
    check(chat(stack, CHATS[0], return_token_ids=True), reference[0])


@pytest.mark.skipif(hf_loading.cpu_dtype() != "bfloat16", reason="this CPU has no bf16 instructions")
def test_image_chats_in_bfloat16_equal_generate_in_bfloat16(stack, vlm_dir):
    """One at a time: in bfloat16 a batch's arithmetic differs from a lone request's (test_transformers)."""
    import torch

    for answer, expected in zip((chat(stack, c, BF16, return_token_ids=True) for c in CHATS[:3]),
                                generated(vlm_dir, torch.bfloat16)[:3], strict=True):  # fmt: skip
        check(answer, expected)


def test_image_chats_in_flight_together_equal_generate_beside_a_text_chat(stack, reference):
    with ThreadPoolExecutor(len(CHATS)) as pool:
        answers = list(pool.map(lambda c: chat(stack, c, return_token_ids=True), CHATS))
    for answer, expected in zip(answers, reference, strict=True):
        check(answer, expected)


def test_a_streamed_image_chat_gives_the_same_text_and_usage(stack, reference):
    answer = chat(stack, CHATS[1], stream=True, stream_options={"include_usage": True})
    assert answer.status_code == 200, answer.text
    events = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
    assert "".join(c["delta"].get("content") or "" for e in events for c in e["choices"]) == reference[1]["text"]
    assert events[-1]["usage"]["prompt_tokens"] == reference[1]["prompt_tokens"]


def generate(stack: Stack, **inputs) -> requests.Response:
    body = {"sampling_parameters": json.dumps({"temperature": 0, "max_tokens": MAX_TOKENS}),
            "exclude_input_in_output": True, "return_num_input_tokens": True, **inputs}  # fmt: skip
    return requests.post(f"{stack.triton}/v2/models/{MODEL}/generate", json=body, timeout=120)


def test_tritons_generate_with_the_image_tensor_gives_the_same_text(stack, reference):
    # vllm_backend's protocol: the prompt holds the model's placeholders, `image` the base64 images.
    answer = generate(stack, text_input=reference[1]["prompt"], image=B64[:2])
    assert answer.status_code == 200, answer.text
    assert answer.json()["text_output"] == reference[1]["text"]
    assert answer.json()["num_input_tokens"] == reference[1]["prompt_tokens"]
    # Image parts inside `messages`: {"type": "image"} takes the next element of `image`.
    messages = [{"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "image"}]}]
    answer = generate(stack, messages=json.dumps(messages), image=B64[2:])
    assert answer.status_code == 200 and answer.json()["text_output"] == reference[2]["text"], answer.text


def test_refusals_name_the_part_and_the_next_request_is_served(stack, reference):
    # More images than model.json's limit_mm_per_prompt (2): the 400 names the third.
    messages = [{"role": "user", "content": [image_part(0), image_part(1), image_part(2)]}]
    refused = chat(stack, messages)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "messages.0.content.2.image_url" and "At most 2 image" in error["message"], error
    # A text_input without a placeholder for its image: the processor's refusal, naming the prompt.
    refused = generate(stack, text_input="No placeholder here.", image=B64[:1])
    assert refused.status_code == 400 and "text_input" in refused.text, refused.text
    check(chat(stack, CHATS[0], return_token_ids=True), reference[0])
