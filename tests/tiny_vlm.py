"""A tiny Idefics3 vision-language model (SmolVLM's family) with random weights, built at test
time: no small VLM ships in a package. The recipe and its traps are in ../shared/STACK.md
("Vision-language models on the CPU"): vLLM's CPU attention needs head_dim 32; the PIL image
processor's class name is written so that both engines compute the same pixels; the row/column
and global-image tokens are added here (the processor adds only three); the chat template
iterates over content parts; weights from N(0, 0.1), seeded, in float32.

The folder looks like a hub model (config.json with `architectures`, processor_config.json,
the tokenizer, a chat template), so `triton-llm make-repo` and `backend: auto` treat it as
they would SmolVLM.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

IMAGE_SIZE, PATCH, SCALE = 32, 8, 2
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH) ** 2 // SCALE**2  # <image> tokens per tile (Idefics3's rule)

# SmolVLM's template, reduced: a string content is used as it is, a list is walked part by part
# (vLLM then hands image parts as {"type": "image"}).
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_tiny_idefics3(dest: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A 2-layer Idefics3 on SmolLM2's tokenizer (`tokenizer_dir`), saved to `dest` (kept if there)."""
    import torch
    from transformers import (
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    if (dest / "config.json").exists():
        return dest
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    extra = ["<global-img>", *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7))]
    tokenizer.add_tokens(extra, special_tokens=True)
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * IMAGE_SIZE},  # a larger image is split into up to 2x2 tiles + the global one
        max_image_size={"longest_edge": IMAGE_SIZE},
    )
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=IMAGE_SEQ_LEN, chat_template=CHAT_TEMPLATE)
    tokenizer = processor.tokenizer  # now with <image>, <fake_token_around_image>, <end_of_utterance>
    tokenizer.chat_template = CHAT_TEMPLATE
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,  # vLLM's CPU attention takes no smaller head
            "max_position_embeddings": 2048,
            "tie_word_embeddings": False,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        scale_factor=SCALE,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        architectures=["Idefics3ForConditionalGeneration"],
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    with torch.no_grad():  # std 0.02 gives near-tied logits; wider weights give distinct greedy tokens
        for param in model.parameters():
            param.normal_(0.0, 0.1)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    _name_the_pil_processor(dest)
    return dest


def _name_the_pil_processor(dest: Path) -> None:
    """transformers 5 saves the torchvision class name even for the PIL processor; both engines must
    load the PIL one (no torchvision here), so the saved files name it."""
    for name in ("processor_config.json", "preprocessor_config.json"):
        path = dest / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        block = data.get("image_processor", data)
        block["image_processor_type"] = "Idefics3ImageProcessorPil"
        path.write_text(json.dumps(data, indent=2))


def noise_image(width: int = 48, height: int = 40, seed: int = 0):
    """A seeded noise image (PIL, RGB)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def png_bytes(image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@functools.lru_cache(maxsize=2)  # ~1.4 s to compress 400 MB of zeros: once per test process
def png_bomb(side: int = 20_000) -> bytes:
    """A decompression bomb: a side x side greyscale PNG (400 M pixels by default) in a few hundred KB."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    pixels = zlib.compress((b"\0" * (side + 1)) * side, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def for_processor(messages: list[dict], image_of) -> tuple[list[dict], list]:
    """OpenAI chat messages as transformers' chat template takes them ({"type": "image"} parts), and
    their images in order: `image_of(url)` is the image an `image_url` part names."""
    out, images = [], []
    for m in messages:
        if isinstance(m["content"], str):
            out.append(m)
            continue
        parts = []
        for p in m["content"]:
            if p["type"] == "image_url":
                images.append(image_of(p["image_url"]["url"]))
                parts.append({"type": "image"})
            else:
                parts.append(p)
        out.append({**m, "content": parts})
    return out, images
