"""/v1/embeddings, as OpenAI documents it, plus vLLM's `truncate_prompt_tokens`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from openai_frontend.schemas.common import RequestModel
from openai_frontend.schemas.limits import MAX_EMBEDDING_INPUTS


class EmbeddingRequest(RequestModel):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    # vLLM's extra: cut inputs to this many tokens (-1: the model's limit) instead of
    # refusing those over the limit.
    truncate_prompt_tokens: int | None = Field(None, ge=-1)

    @field_validator("input")
    @classmethod
    def _texts(cls, v):
        texts = [v] if isinstance(v, str) else v
        if not texts:
            raise ValueError("must not be empty")
        if not all(isinstance(t, str) for t in texts):
            # Token ids only mean something for the tokenizer that made them; clients such as
            # LangChain send tiktoken's, which would silently embed the wrong text.
            raise ValueError("token ids are not supported: send the text")
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"at most {MAX_EMBEDDING_INPUTS} inputs per request, got {len(texts)}")
        for i, text in enumerate(texts):
            if not text:
                raise ValueError(f"input[{i}] must not be an empty string")
        return v

    @field_validator("truncate_prompt_tokens")
    @classmethod
    def _truncate(cls, v):
        if v == 0:
            raise ValueError("must be -1 (the model's limit) or a positive number of tokens")
        return v

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
