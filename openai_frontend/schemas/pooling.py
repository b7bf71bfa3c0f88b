"""vLLM's /classify and /pooling (vLLM 0.32 `entrypoints/pooling/classify` and `pooling`):
the same request fields that apply to text encoders, and the same responses.

Texts only, as on /v1/embeddings (token ids mean something only for the tokenizer that made
them; vLLM's chat-shaped `messages` form needs a chat template, which encoders lack), and
`model` is required. vLLM's extras that change nothing here (`priority`, `cache_salt`,
`padding`, ...) are refused by name rather than ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from openai_frontend.schemas.common import RequestModel
from openai_frontend.schemas.embeddings import EmbeddingRequest, Text, Texts

# vLLM's pooling tasks that a text encoder here can run (its "plugin" and "embed&token_classify"
# need plugins or a model with both heads).
PoolingTask = Literal["embed", "classify", "token_embed", "token_classify"]


class ClassifyRequest(RequestModel):
    model: str
    input: Text | Texts
    user: str | None = None
    # Cut each text to this many tokens (-1: the model's limit) instead of refusing one over it.
    truncate_prompt_tokens: int | None = Field(None, ge=-1)
    # vLLM's: false gives the raw logits instead of their softmax.
    use_activation: bool | None = None

    _no_token_ids = field_validator("input", mode="before")(EmbeddingRequest._no_token_ids.__func__)
    _truncate = field_validator("truncate_prompt_tokens")(EmbeddingRequest._truncate.__func__)

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class PoolingRequest(ClassifyRequest):
    task: PoolingTask | None = Field(None, description="Default: the model's own task.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)


class PoolingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0
    prompt_tokens_details: None = None


class ClassificationData(BaseModel):
    index: int
    label: str | None
    probs: list[float]
    num_classes: int


class ClassificationResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[ClassificationData]
    usage: PoolingUsage


class PoolingResponseData(BaseModel):
    index: int
    object: str = "pooling"
    data: list[list[float]] | list[float] | str


class PoolingResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[PoolingResponseData]
    usage: PoolingUsage
