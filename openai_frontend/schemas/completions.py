"""/v1/completions, fields in OpenAI's documented order; vLLM extras in SamplingFields."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from openai_frontend.schemas.common import FinishReason, SamplingFields, Usage
from openai_frontend.schemas.limits import MAX_LOGPROBS, MAX_PROMPTS

# Constraints live in the types, so that the OpenAPI document (and a fuzzer reading it) knows them.
Text = Annotated[str, Field(min_length=1)]
Prompts = Annotated[list[Text], Field(min_length=1, max_length=MAX_PROMPTS)]


class CompletionRequest(SamplingFields):
    model: str
    prompt: Text | Prompts
    # Accepted only where they change nothing; the schema says so, the validators say why.
    best_of: int | None = Field(None, json_schema_extra={"minimum": 1, "maximum": 1})
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    max_tokens: int | None = Field(16, ge=1)
    suffix: str | None = Field(None, json_schema_extra={"maxLength": 0})

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, v):
        if v not in (None, 1):
            raise ValueError("best_of > 1 is not supported")
        return v

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, v):
        if v:
            raise ValueError("suffix is not supported")
        return v

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def sampling(self) -> dict[str, Any]:
        params = self.sampling_parameters(self.max_tokens)
        if self.logprobs is not None:
            params["logprobs"] = self.logprobs
        return params


class CompletionLogprobs(BaseModel):
    text_offset: list[int] = []
    token_logprobs: list[float | None] = []
    tokens: list[str] = []
    top_logprobs: list[dict[str, float] | None] = []


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason = None


def completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


class CompletionResponse(BaseModel):
    id: str = Field(default_factory=completion_id)
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
