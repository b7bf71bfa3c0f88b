"""/v1/embeddings, as OpenAI documents it, plus vLLM's `truncate_prompt_tokens`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from openai_frontend.schemas.common import RequestModel
from openai_frontend.schemas.limits import MAX_EMBEDDING_INPUTS

# Constraints in the types, so that /openapi.json states them: only text is taken.
Text = Annotated[str, Field(min_length=1)]
Texts = Annotated[list[Text], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]


class EmbeddingRequest(RequestModel):
    model: str
    input: Text | Texts
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    # vLLM's extra: cut inputs to this many tokens (-1: the model's limit) instead of
    # refusing those over the limit.
    truncate_prompt_tokens: int | None = Field(None, ge=-1)

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, v):
        # Token ids only mean something for the tokenizer that made them; clients such as
        # LangChain send tiktoken's, which would silently embed the wrong text. Said before
        # the types are checked, so the client reads why rather than "not a string".
        if isinstance(v, list) and v and isinstance(v[0], (int, list)) and not isinstance(v[0], bool):
            raise ValueError("token ids are not supported: send the text")
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
