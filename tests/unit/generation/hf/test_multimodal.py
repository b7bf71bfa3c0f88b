"""Images on the transformers engine (engines/hf/multimodal.py): what a request with images is refused,
how the processor is called, and, with an in-memory tiny Idefics3, that image prefills and text rows
decode together with `generate`'s greedy tokens."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import numpy as np
import pytest
import torch

from tests.unit.generation.hf.test_batching import _recorder, _serve
from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.hf import multimodal
from triton_llm.generation.engines.hf.batching import CausalBatcher
from triton_llm.generation.engines.hf.engine import HuggingFaceEngine
from triton_llm.generation.engines.hf.sampling import HfSampling
from triton_llm.generation.engines.hf.scheduler import Sequence
from triton_llm.generation.images import ImageInput
from triton_llm.generation.types import GenerateRequest
from triton_llm.settings import HfGenerationSettings, parse_settings
from triton_llm.tasks import Task

IMAGES = [ImageInput(b"png", "image[0]"), ImageInput(b"png", "image[1]"), ImageInput(b"png", "image[2]")]


def settings(**extra) -> HfGenerationSettings:
    return parse_settings(HfGenerationSettings, {"model": "m", **extra})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt_ids": [1, 2]}, "image[0]"),
        ({"prompt": "<image>", "truncate_prompt_tokens": 4}, "sampling_parameters.truncate_prompt_tokens"),
        ({"prompt": "<image><image><image>"}, "image[2]"),  # over the limit of 2
    ],
)
def test_what_a_request_with_images_is_refused_names_its_field(changes, field):
    with pytest.raises(InvalidInput) as info:
        multimodal.check(GenerateRequest(images=IMAGES, **changes), limit=2)
    assert info.value.field == field
    multimodal.check(GenerateRequest(prompt="<image>" * 3, images=IMAGES), limit=None)


def test_the_image_limit_is_read_from_either_form_of_limit_mm_per_prompt():
    assert multimodal._image_limit({"image": 3}) == 3
    assert multimodal._image_limit({"image": {"count": 2, "width": 512}}) == 2
    assert multimodal._image_limit({"video": 1}) is multimodal._image_limit(None) is None


class _Processor:
    """Records its calls; refuses a prompt without a placeholder as Idefics3's processor does."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, text, images, return_tensors, **kwargs):
        self.calls.append({"images": len(images), "return_tensors": return_tensors, **kwargs})
        if "<image>" not in text:
            raise ValueError("The total number of <image> tokens in the prompts should be the same")
        return {"input_ids": np.array([[5, 9, 9, 6]]), "attention_mask": np.ones((1, 4)),
                "pixel_values": np.zeros((1, 1, 3, 4, 4), np.float32)}  # fmt: skip


def test_the_processor_gets_the_decoded_images_and_its_kwargs_and_its_refusal_names_the_prompt(monkeypatch):
    monkeypatch.setattr(multimodal.images, "decode_all", lambda images, max_pixels: ["pil"] * len(images))
    processor = _Processor()
    prompts = multimodal.ImagePrompts(processor, settings(mm_processor_kwargs={"size": {"longest_edge": 64}}))
    chat = GenerateRequest(messages=[{"role": "user", "content": "x"}], images=IMAGES[:1])
    ids, tensors = asyncio.run(prompts.prepare(chat, "User: <image>"))
    assert ids == [5, 9, 9, 6] and list(tensors) == ["pixel_values"]  # the ids are the prompt tokens usage counts
    # A rendered chat template holds its special tokens already (as in vLLM); mm_processor_kwargs go to each call.
    assert processor.calls == [
        {"images": 1, "return_tensors": "np", "add_special_tokens": False, "size": {"longest_edge": 64}}
    ]
    with pytest.raises(InvalidInput) as info:
        asyncio.run(prompts.prepare(GenerateRequest(prompt="no placeholder", images=IMAGES[:1]), "no placeholder"))
    assert info.value.field == "text_input" and "<image> tokens" in str(info.value)


def test_an_image_to_a_model_without_a_processor_is_a_400_naming_it():
    engine = HuggingFaceEngine(settings(), Task.TEXT_GENERATION, "cpu")  # not started: refused before any work
    request = GenerateRequest(messages=[{"role": "user", "content": [{"type": "image"}]}], images=IMAGES[1:2])

    async def first():
        return await anext(engine.generate(request, "r"))

    with pytest.raises(InvalidInput, match="takes no images") as info:
        asyncio.run(first())
    assert info.value.field == "image[1]"


@pytest.mark.slow
def test_a_prompt_with_images_longer_than_the_cap_is_prefilled_whole():
    batcher, gate = _recorder(cap=16)
    # The recorder's prompts have no images: mark the long one as having some.
    original = batcher.submit
    images = {"pixel_values": None}
    batcher.submit = lambda seq, on_update: original(
        dataclasses.replace(seq, image_inputs=images if len(seq.prompt_ids) > 16 else None), on_update
    )
    assert _serve(batcher, [40, 3], max_new=2, gate=gate) == [[7, 7]] * 2
    batcher.stop()
    assert not any(entry.startswith("extend") for entry in batcher.log) and batcher.log[0] == "join 40"


def _tiny_idefics3():
    """Idefics3 with one 32x32 tile per image: 4 <image> tokens each (patch 8, pixel shuffle 2)."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    config = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        text_config={"model_type": "llama", "vocab_size": 128, "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                     "max_position_embeddings": 256, "pad_token_id": 0},
        scale_factor=2, image_token_id=100, attn_implementation="eager", pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.1)  # distinct greedy tokens, not near ties
    return model


@pytest.mark.slow
def test_image_prefills_and_a_text_row_decode_together_with_generates_tokens():
    model = _tiny_idefics3()
    rng = np.random.default_rng(0)
    image = [3, 4, *[100] * 4, 5]
    prompts = [  # two images, one image, no image
        ([7, *image, 8, *image, 9], {"pixel_values": rng.random((1, 2, 3, 32, 32), np.float32)}),
        ([11, 12, *image], {"pixel_values": rng.random((1, 1, 3, 32, 32), np.float32)}),
        ([20, 21, 22, 23, 24], None),
    ]
    expected = []
    with torch.inference_mode():
        for ids, arrays in prompts:
            tensors = {k: torch.from_numpy(v) for k, v in (arrays or {}).items()}
            out = model.generate(torch.tensor([ids]), **tensors, max_new_tokens=6, do_sample=False, eos_token_id=None)
            expected.append(out[0, len(ids) :].tolist())
    steps: list[int] = []

    class Logged(CausalBatcher):
        def step(self):
            steps.append(len(self.active))
            return super().step()

    gate = threading.Event()  # the thread starts once all three wait, so that they join together
    batcher = Logged(lambda: gate.wait(10) and model, max_num_seqs=4, max_num_batched_tokens=2048)

    async def run() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        done = [loop.create_future() for _ in prompts]
        for i, (ids, arrays) in enumerate(prompts):
            seq = Sequence(f"r{i}", ids, 6, [], HfSampling(temperature=0.0), stream=False, image_inputs=arrays)
            batcher.submit(seq, lambda got, end, err, f=done[i]: end and f.set_result((got, err)))
        gate.set()
        results = [await asyncio.wait_for(f, 30) for f in done]
        assert all(err is None for _, err in results)
        return [got for got, _ in results]

    assert asyncio.run(run()) == expected
    batcher.stop()
    assert max(steps) == 3  # decoded in the same steps, rows of all three
