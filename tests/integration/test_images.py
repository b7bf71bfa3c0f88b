"""Images in (issue 28) on the real stack: the tiny Idefics3 (tests/tiny_vlm.py), turned into an entry
by make-repo (tests/conftest.py) and served by vLLM, answers image chats through the frontend with
transformers' `generate` greedy output token for token (in float32 it equals vLLM offline `LLM.chat`:
test_vllm_offline_parity, bench tier), and the same text through Triton's `generate` with vllm_backend's
`image` tensor; each bad image is a 400 naming its content part and the next request is served."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from tests import tiny_vlm
from tests.conftest import VLM, vllm_offline
from tests.tiny_vlm import noise_image, png_bomb, png_bytes

MAX_TOKENS = 12
IMAGES = [noise_image(48, 40, seed=0), noise_image(40, 56, seed=1)]
B64 = [base64.b64encode(png_bytes(image)).decode() for image in IMAGES]
URLS = [f"data:image/png;base64,{b}" for b in B64]
TEXT = "What is in this image?"


def part(k: int, detail: str | None = None) -> dict:
    url = {"url": URLS[k], **({"detail": detail} if detail else {})}
    return {"type": "image_url", "image_url": url}


# One image; two in one message; one in each of two user messages.
CHATS = [
    [{"role": "user", "content": [part(0, "low"), {"type": "text", "text": TEXT}]}],
    [{"role": "user", "content": [part(0), part(1), {"type": "text", "text": "Compare them."}]}],
    [
        {"role": "user", "content": [part(1, "high"), {"type": "text", "text": "A first one."}]},
        {"role": "assistant", "content": "Seen."},
        {"role": "user", "content": [{"type": "text", "text": "And a second:"}, part(0)]},
    ],
]


def for_processor(messages: list[dict]) -> tuple[list[dict], list]:
    return tiny_vlm.for_processor(messages, lambda url: IMAGES[URLS.index(url)])


@pytest.fixture(scope="module")
def reference(vlm_dir) -> list[dict]:
    """transformers' greedy `generate` of each chat in float32: token ids, text, prompt length."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(vlm_dir)
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir, dtype=torch.float32)
    out = []
    for chat in CHATS:
        messages, images = for_processor(chat)
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=prompt, images=images, return_tensors="pt")
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)
        ids = [int(i) for i in generated[0, inputs["input_ids"].shape[1] :]]
        text = processor.decode(ids, skip_special_tokens=True)
        out.append({"prompt": prompt, "token_ids": ids, "text": text, "prompt_tokens": inputs["input_ids"].shape[1]})
    return out


def chat(frontend, messages: list[dict], model: str = VLM, **extra) -> requests.Response:
    body = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0.0, **extra}
    return requests.post(f"{frontend.url}/openai/v1/chat/completions", json=body, timeout=120)


@pytest.mark.parametrize("i", range(len(CHATS)))
def test_image_chats_equal_generate_token_for_token(frontend, reference, i):
    answer = chat(frontend, CHATS[i], return_token_ids=True)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["choices"][0]["token_ids"] == reference[i]["token_ids"]
    assert body["choices"][0]["message"]["content"] == reference[i]["text"]
    # vLLM's server counts the image's expanded tokens as prompt tokens: so do we.
    assert body["usage"]["prompt_tokens"] == reference[i]["prompt_tokens"]


def test_a_streamed_image_chat_gives_the_same_text_and_usage(frontend, reference):
    answer = chat(frontend, CHATS[0], stream=True, stream_options={"include_usage": True})
    assert answer.status_code == 200, answer.text
    events = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert text == reference[0]["text"]
    assert events[-1]["usage"]["prompt_tokens"] == reference[0]["prompt_tokens"]


def generate(triton, model: str, **inputs) -> requests.Response:
    body = {"sampling_parameters": json.dumps({"temperature": 0, "max_tokens": MAX_TOKENS}), **inputs}
    body.setdefault("exclude_input_in_output", True)
    return requests.post(f"{triton.http_url}/v2/models/{model}/generate", json=body, timeout=120)


def test_tritons_generate_with_the_image_tensor_gives_the_same_text(triton, frontend, reference):
    # vllm_backend's protocol: the prompt holds the model's placeholders, `image` the base64 images.
    answer = generate(triton, VLM, text_input=reference[1]["prompt"], image=B64, return_num_input_tokens=True)
    assert answer.status_code == 200, answer.text
    assert answer.json()["text_output"] == reference[1]["text"]
    assert answer.json()["num_input_tokens"] == reference[1]["prompt_tokens"]
    # Ours: image parts inside `messages`, as data: URLs or as {"type": "image"} taking `image`'s next element.
    inline = generate(triton, VLM, messages=json.dumps(CHATS[2]))
    assert inline.status_code == 200 and inline.json()["text_output"] == reference[2]["text"], inline.text
    placeholders = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": TEXT}]}]
    tensor = generate(triton, VLM, messages=json.dumps(placeholders), image=B64[:1])
    assert tensor.status_code == 200 and tensor.json()["text_output"] == reference[0]["text"], tensor.text


def test_tritonclient_streams_the_same_text_with_the_image_tensor(triton, reference):
    import numpy as np
    import tritonclient.grpc as grpcclient

    from tests.clients import GrpcStream, grpc_inputs, text

    stream = GrpcStream(triton.grpc_url)
    try:
        values = {"text_input": reference[1]["prompt"], "stream": True, "exclude_input_in_output": True,
                  "sampling_parameters": json.dumps({"temperature": 0, "max_tokens": MAX_TOKENS})}  # fmt: skip
        image = grpcclient.InferInput("image", [len(B64)], "BYTES")
        image.set_data_from_numpy(np.array([b.encode() for b in B64], dtype=np.object_))
        stream.client.async_stream_infer(VLM, [*grpc_inputs(values), image], enable_empty_final_response=True)
        assert "".join(text(outputs) for outputs in stream.collect()) == reference[1]["text"]
    finally:
        stream.close()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


BAD = {
    "broken base64": ("data:image/png;base64,iVBORw0KGgo!!!", "not valid base64"),
    "not an image": (data_url(b"just some text, not a picture"), "not an image"),
    "decompression bomb": ("bomb", "8000x8000: 64000000 pixels, over 40000000"),
    "remote URL (off by default)": ("http://127.0.0.1:1/cat.png", "--allowed-media-domains is empty"),
    "file URL (off by default)": ("file:///etc/passwd", "--allowed-local-media-path is unset"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_images_are_400s_naming_the_part(frontend, case):
    url, words = BAD[case]
    url = data_url(png_bomb(8000)) if url == "bomb" else url  # 64 M pixels (the frontend takes 40 M) in 90 KB
    messages = [
        {"role": "user", "content": [{"type": "text", "text": TEXT}, {"type": "image_url", "image_url": {"url": url}}]}
    ]  # noqa: E501
    refused = chat(frontend, messages)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "messages.0.content.1.image_url" and words in error["message"], error


def test_a_bad_image_in_a_streamed_chat_is_a_400_before_the_stream(frontend):
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": BAD["not an image"][0]}}]}]
    refused = chat(frontend, messages, stream=True)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "messages.0.content.0.image_url"


def test_too_many_images_names_the_first_over_the_models_limit(frontend, reference):
    # limit_mm_per_prompt is 2 (conftest's VLM_FLAGS): vLLM refuses the prompt; the 400 names the third image.
    messages = [{"role": "user", "content": [part(0), part(1), part(0), {"type": "text", "text": TEXT}]}]
    refused = chat(frontend, messages)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "messages.0.content.2.image_url" and "At most 2 image" in error["message"], error
    served = chat(frontend, CHATS[0], return_token_ids=True)  # nothing left behind: the next one is served
    assert served.status_code == 200 and served.json()["choices"][0]["token_ids"] == reference[0]["token_ids"]


@pytest.mark.parametrize("model", ["smollm2", "smollm2-hf"])
def test_an_image_to_a_text_only_model_is_a_400_naming_the_part(triton, frontend, model):
    messages = [{"role": "user", "content": [{"type": "text", "text": TEXT}, part(0)]}]
    refused = chat(frontend, messages, model=model)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "messages.0.content.1.image_url" and "takes no images" in error["message"], error
    # Through Triton: the engine refuses an inline image naming it (the text-only config has no `image` input).
    inline = generate(triton, model, messages=json.dumps(messages))
    assert inline.status_code == 400 and "messages[0].content[1].image_url" in inline.text, inline.text
    assert generate(triton, model, text_input="Hello", image=B64[:1]).status_code == 400
    assert chat(frontend, [{"role": "user", "content": TEXT}], model=model).status_code == 200


@pytest.mark.bench
def test_vllm_offline_parity(frontend, vlm_dir, reference):
    """The frontend's greedy tokens equal vLLM offline `LLM.chat`'s for every chat, in one offline run (~50-75 s:
    the bench tier, not make test; make test compares with transformers' `generate`, equal to it in float32)."""
    settings = {"model": str(vlm_dir), "dtype": "float32", "max_model_len": 1024, "enable_prefix_caching": False,
                "limit_mm_per_prompt": {"image": 2}}  # fmt: skip
    sampling = {"temperature": 0.0, "max_tokens": MAX_TOKENS}
    offline = vllm_offline(settings, [{"messages": c, "sampling": sampling} for c in CHATS])
    for chat_messages, expected in zip(CHATS, offline, strict=True):
        answer = chat(frontend, chat_messages, return_token_ids=True).json()
        assert answer["choices"][0]["token_ids"] == expected["token_ids"]
        assert answer["usage"]["prompt_tokens"] == expected["num_input_tokens"]
