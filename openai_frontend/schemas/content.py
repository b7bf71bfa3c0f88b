"""Chat content parts beyond text: OpenAI's `image_url` part (docs/protocol.md#images).

A new kind (`input_audio`, video) is one part class here, one entry in `serving.content.KINDS`
and a tensor of the model's; the messages and the routes that map onto chat need no change.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from openai_frontend.schemas.common import StrictModel

# The longest image URL taken: a data: URL is bounded by the request body's limit; a remote one by
# what servers accept (browsers take 2 MB; 64 KiB is more than any real address).
MAX_REMOTE_URL = 65536


class ImageURL(StrictModel):
    url: str = Field(min_length=1)
    # OpenAI's; vLLM accepts and ignores it (the model's processor decides the resolution).
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(StrictModel):
    type: Literal["image_url"]
    image_url: ImageURL


def _tag(value: Any) -> str | None:
    # Tags in brackets: the error's location then names the part's fields only (errors._param drops them).
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"part[{kind}]" if isinstance(kind, str) else None


def content_part(text_part: type) -> Any:
    """A content part chosen by its `type`: `text_part` or an image (a new kind is one more member)."""
    return Annotated[
        Annotated[text_part, Tag("part[text]")] | Annotated[ImagePart, Tag("part[image_url]")],
        Discriminator(
            _tag,
            custom_error_type="content_part_type",
            custom_error_message="a content part's type must be 'text' or 'image_url'",
        ),
    ]
