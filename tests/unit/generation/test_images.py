"""The model side of image input (triton_llm/generation/images.py through protocol.parse_request): where
each image comes from, the order the prompt shows them, and the 400s naming the input that carried one."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

from tests.tiny_vlm import noise_image, png_bomb, png_bytes
from triton_llm.errors import InvalidInput
from triton_llm.generation import images
from triton_llm.generation.protocol import parse_request

PNG = [png_bytes(noise_image(seed=k)) for k in range(2)]
B64 = [base64.b64encode(p) for p in PNG]


def inputs(**values):
    arrays = {}
    for name, value in values.items():
        if name == "image":
            arrays[name] = np.array(value, dtype=np.object_)
        else:
            arrays[name] = np.array([value.encode() if isinstance(value, str) else value], dtype=np.object_)
    return arrays.get


def chat(*content) -> str:
    return json.dumps([{"role": "user", "content": list(content)}])


def test_the_image_tensor_goes_with_a_text_prompt_in_order():
    request = parse_request(inputs(text_input="<image><image>Compare.", image=B64))
    assert [i.data for i in request.images] == PNG
    assert [i.field for i in request.images] == ["image[0]", "image[1]"]


def test_image_parts_of_messages_become_placeholders_in_prompt_order():
    url = "data:image/png;base64," + B64[1].decode()
    messages = chat(
        {"type": "image"}, {"type": "text", "text": "and"}, {"type": "image_url", "image_url": {"url": url}}
    )
    request = parse_request(inputs(messages=messages, image=B64[:1]))
    assert request.messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"}]
    assert [i.data for i in request.images] == PNG
    assert [i.field for i in request.images] == ["image[0]", "messages[0].content[2].image_url"]


def test_text_only_parts_are_still_joined():
    request = parse_request(inputs(messages=chat({"type": "text", "text": "a"}, {"type": "text", "text": "b"})))
    assert request.messages[0]["content"] == "ab" and request.images is None


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"text_input": "<image>", "image": [b"not base64!"]}, "image[0]"),
        ({"messages": chat({"type": "image"})}, "messages[0].content[0]"),
        ({"messages": chat({"type": "text", "text": "no image part"}), "image": B64[:1]}, "image[0]"),
        ({"messages": chat({"type": "image_url", "image_url": {"url": "http://example.com/a.png"}})},
         "messages[0].content[0].image_url"),
        ({"messages": chat({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}})},
         "messages[0].content[0].image_url"),
    ],
)  # fmt: skip
def test_bad_image_inputs_name_their_place(values, field):
    with pytest.raises(InvalidInput) as info:
        parse_request(inputs(**values))
    assert info.value.field == field


def test_decoding_checks_the_pixels_before_decoding():
    good = images.ImageInput(PNG[0], "image[0]")
    assert images.decode(good, 10_000).size == (48, 40)
    with pytest.raises(InvalidInput, match="48x40: 1920 pixels, over 1000") as info:
        images.decode(good, 1000)
    assert info.value.field == "image[0]"
    with pytest.raises(InvalidInput, match="more pixels than the limit"):
        images.decode(images.ImageInput(png_bomb(), "image[1]"), 40_000_000)
    with pytest.raises(InvalidInput, match="not an image"):
        images.decode(images.ImageInput(b"plain text", "image[2]"), 1000)


def test_the_pixel_limit_is_named_as_it_is_and_a_large_image_decodes_in_a_thread():
    with pytest.raises(InvalidInput) as info:
        images.decode(images.ImageInput(PNG[0], "image[0]"), 1000)
    assert info.value.problem == "the image is 48x40: 1920 pixels, over 1000"
    big = png_bytes(noise_image(200, 120))
    assert len(big) > images.INLINE_BYTES  # so decode_off_loop hands it to a worker thread
    both = [images.ImageInput(PNG[0], "image[0]"), images.ImageInput(big, "image[1]")]
    assert [i.size for i in asyncio.run(images.decode_off_loop(both, 10**6))] == [(48, 40), (200, 120)]
    with pytest.raises(InvalidInput) as info:
        asyncio.run(images.decode_off_loop(both, 10_000))
    assert info.value.field == "image[1]"
