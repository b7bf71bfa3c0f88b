"""Images of a generation request (docs/protocol.md#images): where they come from, and decoding them.

vllm_backend's `image` input carries the images (TYPE_STRING, one base64-encoded image file per
element). For `text_input` the prompt holds the model's own placeholders (Idefics3's `<image>`);
for `messages`, an image part is either `{"type": "image"}` (it takes the next element of
`image`: what our frontend sends) or an `image_url` part with a `data:` URL, decoded here. The
model fetches nothing: http(s) URLs are the frontend's job (its fetch boundary). Each image keeps
the input it came from (`image[2]`, `messages[0].content[1]`), so a bad one is a 400 naming it.
Plain Python + numpy + PIL. Decoding runs off the engine's event loop (`decode_off_loop`), except
for small images: a 32x32 JPEG decodes in ~0.1 ms, less than the hop to a worker thread costs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from triton_llm.errors import InvalidInput

# The pixel count a decoded image may have unless model.json's `max_image_pixels` says otherwise:
# a 4K photo is 8.3 M; a decompression bomb (a few KB of PNG that inflates to gigabytes) is refused
# from its header, before its pixels are decoded.
DEFAULT_MAX_PIXELS = 40_000_000
# A request's images up to this many encoded bytes in all are decoded on the event loop (at most ~1 ms
# of JPEG): a worker thread would wait for the GIL behind the busy loop, up to its 5 ms switch interval.
INLINE_BYTES = 64 * 1024
# The modalities a content part may carry, by part type: a new one (`input_audio`) is one entry here,
# one tensor beside `image`, one decoder.
PART_TYPES = {"image": "image", "image_url": "image"}


@dataclass(frozen=True)
class ImageInput:
    """One encoded image (PNG, JPEG, ... bytes) and the input that carried it, for errors."""

    data: bytes
    field: str


def from_tensor(get: Callable[[str], np.ndarray | None]) -> list[ImageInput]:
    """The `image` input's elements, base64-decoded, as vllm_backend reads them."""
    array = get("image")
    if array is None:
        return []
    out = []
    for k, value in enumerate(np.asarray(array, dtype=object).reshape(-1)):
        field = f"image[{k}]"
        raw = value if isinstance(value, bytes) else str(value).encode()
        out.append(ImageInput(b64decode(raw, field), field))
    return out


def b64decode(raw: bytes | str, field: str) -> bytes:
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "is not valid base64") from None
    if not data:
        raise InvalidInput(field, "is empty")
    return data


def from_data_url(url: Any, field: str) -> bytes:
    """A `data:<type>;base64,<data>` URL's bytes; any other URL is refused (the model fetches nothing)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        raise InvalidInput(field, "must be a data: URL (a model fetches nothing: the frontend fetches http(s) URLs)")
    head, sep, payload = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise InvalidInput(field, "a data: URL must be data:<media type>;base64,<data>")
    return b64decode(payload, field)


class Collected:
    """The images of one request in the order the prompt shows them: `messages`' image parts
    (each `{"type": "image"}` part taking the next element of the `image` input), or the input's."""

    def __init__(self, tensor: list[ImageInput]):
        self.tensor = tensor
        self.used = 0
        self.images: list[ImageInput] = []

    def part(self, part: dict[str, Any], field: str) -> dict[str, Any]:
        """An image part of a message as the chat template takes it: {"type": "image"}."""
        if part.get("type") == "image":
            if self.used >= len(self.tensor):
                raise InvalidInput(field, 'an {"type": "image"} part takes the next element of `image`; none is left')
            self.images.append(self.tensor[self.used])
            self.used += 1
        else:
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            self.images.append(ImageInput(from_data_url(url, f"{field}.image_url"), f"{field}.image_url"))
        return {"type": "image"}

    def check_all_used(self) -> None:
        if self.used < len(self.tensor):
            raise InvalidInput(
                f"image[{self.used}]",
                f'`image` has {len(self.tensor)} elements and `messages` {self.used} {{"type": "image"}} parts',
            )


def decode_all(images: list[ImageInput], max_pixels: int, load: Callable[[bytes], Any] | None = None) -> list[Any]:
    """The images as RGB PIL images (or what `load` makes of each one's bytes, once its size is checked), or
    InvalidInput naming the first that is not an image or is too large."""
    return [decode(image, max_pixels, load) for image in images]


async def decode_off_loop(
    images: list[ImageInput], max_pixels: int, load: Callable[[bytes], Any] | None = None
) -> list[Any]:
    """`decode_all`, in a worker thread unless the images are small (INLINE_BYTES)."""
    if sum(len(image.data) for image in images) <= INLINE_BYTES:
        return decode_all(images, max_pixels, load)
    return await asyncio.to_thread(decode_all, images, max_pixels, load)


def decode(image: ImageInput, max_pixels: int, load: Callable[[bytes], Any] | None = None) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image.data)) as opened:  # reads the header only
            width, height = opened.size
            if width * height > max_pixels:
                raise InvalidInput(
                    image.field, f"the image is {width}x{height}: {width * height} pixels, over {max_pixels}"
                )
            if load is not None:
                return load(image.data)
            return opened.convert("RGB")  # decodes; vLLM and transformers take RGB
    except InvalidInput:  # the pixel count's, as it is (it is a ValueError too)
        raise
    except UnidentifiedImageError:
        raise InvalidInput(image.field, "is not an image PIL can read (PNG, JPEG, WebP, GIF, ...)") from None
    except Image.DecompressionBombError:  # PIL's own check, at twice its 89 M pixels
        raise InvalidInput(image.field, f"the image has more pixels than the limit of {max_pixels}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidInput(image.field, f"the image could not be decoded: {exc}") from None


def is_multimodal(config: Any) -> bool:
    """Whether a transformers config describes a vision-language model (it has a `vision_config`)."""
    return getattr(config, "vision_config", None) is not None


IMAGE_INPUT = {"name": "image", "data_type": "TYPE_STRING", "dims": [-1], "optional": True}


def advertised_inputs(model_dir: str) -> list[dict[str, Any]]:
    """vllm_backend's `image` input, declared by a vision-language model only: a text-only model's config
    lacks it, so the frontend refuses an image part to it naming the part, and Triton an `image` tensor.
    None when model.json or the model's config cannot be read (`initialize` says why)."""
    from triton_llm import hf_loading
    from triton_llm.settings import ModelSettings, load_model_json, parse_settings

    try:
        config = hf_loading.load_config(parse_settings(ModelSettings, load_model_json(model_dir)))
    except Exception:  # noqa: BLE001 - initialize reports the same problem with its cause
        return []
    return [IMAGE_INPUT] if is_multimodal(config) else []
