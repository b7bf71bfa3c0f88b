"""vLLM's refusals of a request's images, named by the image they are about (engines/vllm/multimodal.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from tests.tiny_vlm import noise_image, png_bytes
from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.vllm import multimodal
from triton_llm.generation.images import ImageInput
from triton_llm.generation.types import GenerateRequest

PNG = png_bytes(noise_image())


def request(n: int) -> GenerateRequest:
    return GenerateRequest(prompt="x", images=[ImageInput(PNG, f"image[{k}]") for k in range(n)])


def test_too_many_images_names_the_first_over_the_limit():
    error = multimodal.client_error(ValueError("At most 2 image(s) may be provided in one prompt."), request(3), "p")
    assert error.field == "image[2]" and "limit_mm_per_prompt" in error.problem


def test_other_errors_are_not_about_images():
    assert multimodal.client_error(RuntimeError("engine died"), request(1), "p") is None
    assert multimodal.client_error(ValueError("At most 2 image(s)"), request(0), "p") is None


def test_a_text_only_model_refuses_the_first_image_and_a_vlm_gets_multi_modal_data():
    with pytest.raises(InvalidInput) as info:
        multimodal.refuse_if_text_only(request(2), SimpleNamespace(is_multimodal_model=False))
    assert info.value.field == "image[0]"
    vlm = SimpleNamespace(is_multimodal_model=True)
    prompt = asyncio.run(multimodal.with_images("<image>", request(1), vlm, 10**6))
    assert prompt["prompt"] == "<image>" and prompt["multi_modal_data"]["image"][0].size == (48, 40)


def test_images_reach_vllm_as_its_server_loads_them():
    """With their encoded bytes (vLLM hashes those, not the pixels), and a transparent PNG onto white."""
    from PIL import Image

    rgba = Image.new("RGBA", (4, 2), (10, 20, 30, 0))
    data = png_bytes(rgba)
    req = GenerateRequest(prompt="x", images=[ImageInput(data, "image[0]")])
    prompt = asyncio.run(multimodal.with_images("<image>", req, SimpleNamespace(is_multimodal_model=True), 10**6))
    (image,) = prompt["multi_modal_data"]["image"]
    assert image.original_bytes == data and image.mode == "RGB"
    assert image.media.getpixel((0, 0)) == (255, 255, 255)
