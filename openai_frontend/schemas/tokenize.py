"""vLLM's /tokenize and /detokenize (vLLM 0.32 `entrypoints/serve/tokenize/protocol.py`): the
same fields, defaults and responses.

vLLM takes two request shapes on /tokenize, a `prompt` or chat `messages`; here they are one
model with exactly one of the two, so that an error names the field at fault instead of a
union member, and the fields of one shape are refused with the other (vLLM ignores them).
`model` may be left out, as in vLLM, when one generation model is served.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas.chat import ChatCompletionRequest, Message, check_generation_prompt
from openai_frontend.schemas.common import RequestModel
from openai_frontend.schemas.limits import MAX_MESSAGES, MAX_PROMPT_TOKEN_IDS, MAX_TOOLS
from openai_frontend.schemas.tools import Tool

# vLLM's defaults of the chat-only fields: given with a `prompt`, they are refused.
_CHAT_ONLY = {
    "add_generation_prompt": True,
    "continue_final_message": False,
    "chat_template_kwargs": None,
    "tools": None,
}


class TokenizeRequest(RequestModel):
    model: str | None = None
    # One of the two (empty is refused, as a prompt to generate from is; vLLM counts 0 tokens).
    prompt: str | None = Field(None, min_length=1)
    messages: list[Message] | None = Field(None, min_length=1, max_length=MAX_MESSAGES)
    # Default: true for a prompt, false for messages (their template holds the special tokens).
    add_special_tokens: bool | None = None
    return_token_strs: bool | None = False
    # With messages only.
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template: str | None = Field(None, json_schema_extra={"maxLength": 0})
    chat_template_kwargs: dict[str, Any] | None = None
    tools: Annotated[list[Tool], Field(max_length=MAX_TOOLS)] | None = None

    @model_validator(mode="after")
    def _one_shape(self):
        if (self.prompt is None) == (self.messages is None):
            raise FieldValueError("prompt", "give either prompt or messages")
        if self.prompt is not None:
            for name in _CHAT_ONLY.keys() & self.model_fields_set:
                raise FieldValueError(name, "applies to messages only")
        # vLLM's default: a request's own template is refused (--trust-request-chat-template).
        if self.chat_template is not None:
            raise FieldValueError("chat_template", "is not accepted: the model's template (model.json) renders")
        check_generation_prompt(self)
        return self

    def template_kwargs(self) -> dict[str, Any] | None:
        """The model's `chat_template_kwargs`, built as a chat completion's are, so that the same
        messages give the same prompt (the two fields win where given)."""
        return ChatCompletionRequest.template_kwargs(self)  # type: ignore[arg-type]  # same fields


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None  # vLLM sends null when not asked


class DetokenizeRequest(RequestModel):
    model: str | None = None
    # Ids fit the model's INT64 input (schemas.integers); the model checks its vocabulary.
    # Empty is refused, as an empty `input_ids` prompt is (vLLM answers "").
    tokens: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=MAX_PROMPT_TOKEN_IDS)]


class DetokenizeResponse(BaseModel):
    prompt: str
