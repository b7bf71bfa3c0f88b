"""A request's media parts -> the model's media tensors (docs/protocol.md#images), for every route that
takes messages.

The one protocol: each image part of a message reaches the model as `{"type": "image"}` in `messages`
(schemas.chat.Message.for_template) and its bytes, base64-encoded, as the next element of
vllm_backend's `image` tensor. The frontend fetches and checks them (media.py) first, so that a bad
image is a 400 naming its part before any model work, and the model, which fetches nothing, only
decodes. A model's refusal of `image[k]` (too many for its `limit_mm_per_prompt`, say) is renamed
to the part it came from.

Routes that map their own shapes onto chat (the Responses API's `input_image`, the Messages API's
image blocks) build chat messages with `image_url` parts and are served by serving/chat.py, which
calls `media_inputs`; one that builds model tensors itself calls it too, with its own part names.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from openai_frontend.backend import ModelInfo
from openai_frontend.errors import BadRequest
from openai_frontend.media import MediaError, MediaSettings, load_image

# Part type -> the model tensor its media goes in. `input_audio` would be {"input_audio": "audio"}.
KINDS = {"image_url": "image"}
_TENSOR_ROW = re.compile(r"(?P<tensor>[a-z_]+)\[(?P<row>\d+)\](?P<rest>.*)", re.DOTALL)


@dataclass(frozen=True)
class MediaPart:
    """One media part of a request: its tensor (`image`), its URL, and the client's name for it."""

    tensor: str
    url: str
    param: str  # messages.0.content.1.image_url


def media_parts(messages: Sequence[Any], prefix: str = "messages") -> list[MediaPart]:
    """The media parts of chat messages (schemas.chat.Message), in the order the prompt shows them."""
    parts = []
    for i, message in enumerate(messages):
        if not isinstance(message.content, list):
            continue
        for j, part in enumerate(message.content):
            if part.type in KINDS:
                parts.append(MediaPart(KINDS[part.type], part.image_url.url, f"{prefix}.{i}.content.{j}.{part.type}"))
    return parts


async def media_inputs(
    parts: Sequence[MediaPart], info: ModelInfo, settings: MediaSettings | None
) -> dict[str, np.ndarray]:
    """The media tensors of `parts` ({"image": base64 elements}); a 400 naming the part for a model that
    declares no such input, one past the frontend's limit, or one that cannot be had (media.py)."""
    if not parts:
        return {}
    settings = settings or MediaSettings()
    for part in parts:
        if part.tensor not in info.inputs:  # a text-only model declares no `image` input
            problem = f"the model '{info.name}' takes no {part.tensor}s (it declares no `{part.tensor}` input)"
            raise MediaError(part.param, problem)
    if len(parts) > settings.max_images:
        raise MediaError(parts[settings.max_images].param, f"a request may carry at most {settings.max_images} images")
    loaded = await asyncio.gather(*(load_image(p.url, p.param, settings) for p in parts))
    tensors: dict[str, list[bytes]] = {}
    for part, data in zip(parts, loaded, strict=True):
        tensors.setdefault(part.tensor, []).append(base64.b64encode(data))
    return {name: np.array(rows, dtype=np.object_) for name, rows in tensors.items()}


def rename(error: BadRequest, parts: Sequence[MediaPart]) -> BadRequest:
    """A model's refusal of `image[k]` as the client's part; any other error as it is."""
    match = _TENSOR_ROW.fullmatch(error.param or "")
    if match is None:
        return error
    rows = [p for p in parts if p.tensor == match["tensor"]]
    row = int(match["row"])
    if row >= len(rows):
        return error
    param = rows[row].param + match["rest"]
    problem = str(error.message).split(": ", 1)[-1] if str(error.message).startswith(error.param) else error.message
    return BadRequest(f"{param}: {problem}", param=param)


async def renamed(steps: AsyncIterator[Any], parts: Sequence[MediaPart]) -> AsyncIterator[Any]:
    """`steps`, with a model's refusal of a media row renamed to its part."""
    try:
        async for step in steps:
            yield step
    except BadRequest as exc:
        raise rename(exc, parts) from None
