"""A request's images into vLLM's own multimodal processing: the prompt (rendered chat template or
`text_input`, holding the model's placeholders) goes to vLLM's renderer with `multi_modal_data`,
whose processor (the model's Hugging Face processor, `mm_processor_kwargs`) expands each placeholder
into the image's tokens, as vLLM's server and `LLM.chat` do. Each image is loaded as vLLM's server
loads it (`_vllm_load`); large ones in a thread, off the engine's event loop (images.decode_off_loop).
vLLM's renderer runs its processor in its own thread pool.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from triton_llm.errors import InvalidInput
from triton_llm.generation import images
from triton_llm.generation.types import GenerateRequest

# vLLM's refusal of too many items: "At most 2 image(s) may be provided in one prompt."
_TOO_MANY = re.compile(r"At most (\d+) image", re.IGNORECASE)


async def with_images(source: Any, request: GenerateRequest, model_config: Any, max_pixels: int) -> Any:
    """`source` (a prompt string or a token prompt) with the request's images as vLLM's `multi_modal_data`."""
    if not request.images:
        return source
    refuse_if_text_only(request, model_config)
    decoded = await images.decode_off_loop(request.images, max_pixels, _vllm_load())
    prompt = {"prompt": source} if isinstance(source, str) else dict(source)
    prompt["multi_modal_data"] = {"image": decoded}
    return prompt


@functools.cache
def _vllm_load() -> Any:
    """vLLM's server's own image loader (its MediaConnector's ImageMediaIO): EXIF orientation applied,
    RGBA onto white, and the image kept with its encoded bytes (MediaWithBytes), which vLLM hashes for
    its processor cache instead of the pixels. None on a vLLM without it: PIL's RGB conversion then."""
    try:
        from vllm.multimodal.media import ImageMediaIO, MediaWithBytes  # noqa: F401 - newer than 0.16
    except ImportError:
        return None
    loader = ImageMediaIO(image_mode="RGB")
    return loader.load_bytes


def refuse_if_text_only(request: GenerateRequest, model_config: Any) -> None:
    """A text-only model's refusal of an image, naming it, before its chat template meets a list of parts."""
    if request.images and not model_config.is_multimodal_model:
        raise InvalidInput(request.images[0].field, "this model takes no images (it is not a vision-language model)")


def client_error(exc: BaseException, request: GenerateRequest, prompt_field: str) -> InvalidInput | None:
    """vLLM's refusal of a request's images, naming the image it is about; None for any other error."""
    if not request.images:
        return None
    while exc.__cause__ is not None and not str(exc):  # vLLM's EngineGenerateError says nothing itself
        exc = exc.__cause__
    text = str(exc)
    if (match := _TOO_MANY.search(text)) is not None:
        limit = int(match.group(1))
        where = request.images[min(limit, len(request.images) - 1)].field
        return InvalidInput(where, f"{text} (model.json's limit_mm_per_prompt)")
    if isinstance(exc, ValueError) and ("placeholder" in text.lower() or "image" in text.lower()):
        # e.g. a text_input without as many placeholders as images
        return InvalidInput(prompt_field, text)
    return None
