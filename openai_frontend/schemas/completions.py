"""/v1/completions, fields in OpenAI's documented order; vLLM extras in SamplingFields."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas.common import OMITTED_IF_NONE, FinishReason, PromptLogprobs, SamplingFields, Usage
from openai_frontend.schemas.limits import MAX_LOGPROBS, MAX_PROMPT_TOKEN_IDS, MAX_PROMPTS

# Constraints live in the types, so that the OpenAPI document (and a fuzzer reading it) knows them.
Text = Annotated[str, Field(min_length=1)]
Prompts = Annotated[list[Text], Field(min_length=1, max_length=MAX_PROMPTS)]
# Token-id prompts, as OpenAI and vLLM take them: one list of ids, or a list of such lists
# (not mixed with strings, as in vLLM). Ids fit the model's INT64 input (schemas.integers);
# the model checks its vocabulary.
TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=MAX_PROMPT_TOKEN_IDS)]
TokenPrompts = Annotated[list[TokenIds], Field(min_length=1, max_length=MAX_PROMPTS)]


def _prompt_kind(value: Any) -> str:
    """Which form a prompt takes, by its first element, so that an error is about that form
    only. The tags are type names, which error locations leave out (errors._param)."""
    if isinstance(value, str):
        return "str"
    first = value[0] if isinstance(value, list) and value else None
    if isinstance(first, int) and not isinstance(first, bool):
        return "list[int]"
    return "list[list[int]]" if isinstance(first, list) else "list[str]"


Prompt = Annotated[
    Annotated[Text, Tag("str")]
    | Annotated[Prompts, Tag("list[str]")]
    | Annotated[TokenIds, Tag("list[int]")]
    | Annotated[TokenPrompts, Tag("list[list[int]]")],
    Discriminator(_prompt_kind),
]


class CompletionRequest(SamplingFields):
    model: str
    prompt: Prompt
    # Accepted and ignored, as vLLM 0.32's server does (its CompletionRequest has no such field).
    best_of: int | None = Field(None, ge=1, description="Ignored, as in vLLM 0.32.")
    # Accepted only where it changes nothing; the schema says so, the validator says why.
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    max_tokens: int | None = Field(16, ge=1)
    suffix: str | None = Field(None, json_schema_extra={"maxLength": 0})

    @model_validator(mode="after")
    def _beam_search(self):
        # vLLM's rules, in its words.
        if self.use_beam_search and self.stream:
            raise FieldValueError("use_beam_search", "Streaming is not currently supported with beam search")
        if self.use_beam_search and self.echo and self.logprobs is not None:
            raise FieldValueError(
                "echo",
                "`echo` with `logprobs` is not supported with beam search because beam search does not "
                "compute prompt logprobs.",
            )
        return self

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, v):
        if v:
            raise ValueError("suffix is not supported")
        return v

    @property
    def prompts(self) -> list[str | list[int]]:
        """One model request each: a text or a list of token ids."""
        if isinstance(self.prompt, str) or isinstance(self.prompt[0], int):
            return [self.prompt]  # type: ignore[list-item]
        return list(self.prompt)

    def sampling(self) -> dict[str, Any]:
        params = self.sampling_parameters(self.max_tokens)
        if self.logprobs is not None:
            params["logprobs"] = self.logprobs
            if self.echo and self.prompt_logprobs is None:
                # vLLM's rule: an echoed prompt comes with its logprobs too (as in OpenAI).
                params["prompt_logprobs"] = self.logprobs
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
    # vLLM's, only when asked for (`prompt_logprobs`, echo with logprobs, `return_token_ids`).
    prompt_logprobs: PromptLogprobs | None = OMITTED_IF_NONE
    prompt_token_ids: list[int] | None = OMITTED_IF_NONE
    token_ids: list[int] | None = OMITTED_IF_NONE


def completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


class CompletionResponse(BaseModel):
    id: str = Field(default_factory=completion_id)
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
