"""/v1/chat/completions, fields in OpenAI's documented order; vLLM extras in SamplingFields."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas.common import (
    OMITTED_IF_NONE,
    FinishReason,
    PromptLogprobs,
    SamplingFields,
    StrictModel,
    Usage,
)
from openai_frontend.schemas.limits import MAX_CONTENT_PARTS, MAX_LOGPROBS, MAX_MESSAGES


class TextPart(StrictModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | Annotated[list[TextPart], Field(max_length=MAX_CONTENT_PARTS)] | None = None
    name: str | None = None

    def for_template(self) -> dict[str, Any]:
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        return {"role": self.role, "content": content or ""}


class JsonSchema(BaseModel):
    name: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(StrictModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_given(self):
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("json_schema is required when type is 'json_schema'")
        return self

    def structured_outputs(self) -> dict[str, Any] | None:
        if self.type == "json_object":
            return {"json_object": True}
        if self.type == "json_schema":
            return {"json": self.json_schema.schema_}
        return None


class ChatCompletionRequest(SamplingFields):
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    model: str
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    # vLLM's: extra variables for the model's chat template (`{"enable_thinking": false}`).
    chat_template_kwargs: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self):
        # vLLM's rule: candidates asked for (top_logprobs > 0) of tokens whose logprobs were not.
        if self.top_logprobs and not self.logprobs:
            raise FieldValueError("top_logprobs", "can only be given when `logprobs` is true")
        return self

    @model_validator(mode="after")
    def _one_constraint(self):
        # vLLM's rule: one constraint, whether it comes from response_format or structured_outputs.
        if self.structured_outputs and self.response_format and self.response_format.structured_outputs():
            raise FieldValueError("structured_outputs", "give a constraint in this or in response_format, not both")
        return self

    def sampling(self) -> dict[str, Any]:
        params = self.sampling_parameters(self.max_completion_tokens or self.max_tokens)
        if self.logprobs:
            params["logprobs"] = self.top_logprobs or 0
        if self.response_format and (structured := self.response_format.structured_outputs()):
            params["structured_outputs"] = structured
        return params


class ChatMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = []


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason = None
    token_ids: list[int] | None = OMITTED_IF_NONE  # vLLM's, with `return_token_ids`


class ChatChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason = None
    token_ids: list[int] | None = OMITTED_IF_NONE


def chat_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=chat_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None
    # vLLM's, only when asked for (`prompt_logprobs`, `return_token_ids`).
    prompt_logprobs: PromptLogprobs | None = OMITTED_IF_NONE
    prompt_token_ids: list[int] | None = OMITTED_IF_NONE


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    prompt_token_ids: list[int] | None = OMITTED_IF_NONE  # vLLM's: the first chunk's, with `return_token_ids`
