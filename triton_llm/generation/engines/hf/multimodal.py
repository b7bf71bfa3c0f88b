"""Images on the transformers engine: the model's own processor (`AutoProcessor`) turns the prompt
(a rendered chat template or `text_input`, holding the model's placeholders such as Idefics3's
`<image>`) and the decoded images into the expanded token ids and the image tensors
(`pixel_values`, `pixel_attention_mask`, ...), as `generate`'s callers do. The expanded ids are the
prompt tokens that usage counts, as vLLM's server counts them.

The batcher prefills an image-bearing sequence in a pass of its own with its tensors (each VLM
family lays out and pads its tensors its own way: a row of its own needs no family's rules), then
its cache rows join the batch and it decodes beside the others (`batching.CausalBatcher`).
Decoding the images and running the processor happen in a thread, off the event loop and off the
engine's step; the tensors stay numpy until the batching thread, which does all torch work.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from triton_llm import hf_loading
from triton_llm.errors import InvalidInput
from triton_llm.generation import images
from triton_llm.generation.engines.base import prompt_field
from triton_llm.generation.types import GenerateRequest
from triton_llm.settings import HfGenerationSettings

is_multimodal = images.is_multimodal  # a `vision_config`: load the processor
TEXT_ONLY = "this model takes no images (it is not a vision-language model)"


def model_class(multimodal: bool, causal: bool) -> Any:
    """The auto class a model loads with: image-text-to-text for a vision-language model."""
    import transformers

    if multimodal:
        return transformers.AutoModelForImageTextToText
    return transformers.AutoModelForCausalLM if causal else transformers.AutoModelForSeq2SeqLM


def load_processor(s: HfGenerationSettings) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(
        hf_loading.model_id(s), revision=s.revision, trust_remote_code=s.trust_remote_code
    )


class ImagePrompts:
    """A vision-language model's prompts with images: checked, then run through its processor."""

    def __init__(self, processor: Any, settings: HfGenerationSettings):
        self.processor = processor
        self.max_pixels = settings.max_image_pixels
        self.call_kwargs = dict(settings.mm_processor_kwargs or {})  # as vLLM passes them: to each call
        self.limit = _image_limit(settings.limit_mm_per_prompt)

    async def prepare(self, request: GenerateRequest, prompt: str) -> tuple[list[int], dict[str, np.ndarray]]:
        """The prompt's expanded token ids and the model's image inputs (numpy), or InvalidInput naming the part."""
        check(request, self.limit)
        return await asyncio.to_thread(self._process, request, prompt)

    def _process(self, request: GenerateRequest, prompt: str) -> tuple[list[int], dict[str, np.ndarray]]:
        decoded = images.decode_all(request.images, self.max_pixels)
        # A rendered chat template already holds its special tokens (as in vLLM).
        kwargs = {"add_special_tokens": request.messages is None, **self.call_kwargs}
        try:
            out = self.processor(text=prompt, images=decoded, return_tensors="np", **kwargs)
        except ValueError as exc:  # e.g. a text_input without one placeholder per image
            raise InvalidInput(prompt_field(request), str(exc)) from None
        ids = [int(t) for t in out["input_ids"][0]]
        tensors = {k: np.asarray(v) for k, v in out.items() if k not in ("input_ids", "attention_mask")}
        return ids, tensors


def check(request: GenerateRequest, limit: int | None) -> None:
    """What this engine refuses of a request with images, naming the part, before any work."""
    if request.prompt_ids is not None:
        raise InvalidInput(request.images[0].field, "images need a text prompt (`text_input` or `messages`)")
    if request.truncate_prompt_tokens is not None:
        raise InvalidInput(
            "sampling_parameters.truncate_prompt_tokens", "cannot cut a prompt with images on the transformers engine"
        )
    if limit is not None and len(request.images) > limit:
        raise InvalidInput(
            request.images[limit].field,
            f"At most {limit} image(s) may be provided in one prompt (model.json's limit_mm_per_prompt)",
        )


def _image_limit(limits: dict[str, Any] | None) -> int | None:
    value = (limits or {}).get("image")
    return value.get("count") if isinstance(value, dict) else value


def to_model(tensors: dict[str, np.ndarray], model: Any) -> dict[str, Any]:
    """The processor's arrays as the model takes them, on its device; floating ones in its dtype (as
    `inputs.to(model.device, model.dtype)` before `generate`). On the batching thread."""
    import torch

    out = {}
    for name, array in tensors.items():
        t = torch.from_numpy(np.ascontiguousarray(array)).to(model.device)
        out[name] = t.to(model.dtype) if t.is_floating_point() else t
    return out
