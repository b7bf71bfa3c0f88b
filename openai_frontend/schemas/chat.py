"""/v1/chat/completions, fields in OpenAI's documented order; vLLM extras in SamplingFields."""

from __future__ import annotations

import json
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
from openai_frontend.schemas.content import content_part
from openai_frontend.schemas.limits import MAX_CONTENT_PARTS, MAX_LOGPROBS, MAX_MESSAGES, MAX_TOOL_CALLS, MAX_TOOLS
from openai_frontend.schemas.tools import DeltaToolCall, Tool, ToolCall, ToolChoice, check_tool_usage


class TextPart(StrictModel):
    type: Literal["text"]
    text: str


# A content part, by its `type`: text, or an image (schemas/content.py; serving/content.py sends it).
ContentPart = content_part(TextPart)


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | Annotated[list[ContentPart], Field(max_length=MAX_CONTENT_PARTS)] | None = None
    name: str | None = None
    # An assistant's: the calls it made (its content may then be null).
    tool_calls: Annotated[list[ToolCall], Field(max_length=MAX_TOOL_CALLS)] | None = None
    # A tool's: the call it answers.
    tool_call_id: str | None = None

    def for_template(self) -> dict[str, Any]:
        """The message as the model takes it (docs/protocol.md): content a string, or with images a list of
        text parts and `{"type": "image"}` parts, each taking the next element of the `image` tensor."""
        content: Any = self.content
        if isinstance(content, list):
            if any(part.type != "text" for part in content):
                content = [{"type": "text", "text": p.text} if p.type == "text" else {"type": "image"} for p in content]
            else:
                content = "".join(part.text for part in content)
        out: dict[str, Any] = {"role": self.role, "content": content or ""}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls is not None:
            out["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
        return out


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
    tools: Annotated[list[Tool], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoice | None = Field(None, description='Default: "auto" with tools, else "none".')
    parallel_tool_calls: bool | None = Field(None, description="Default: true; false: at most one call.")
    # vLLM's: extra variables for the model's chat template (`{"enable_thinking": false}`),
    # and two of them as fields of their own, which win over the same variables in it.
    chat_template_kwargs: dict[str, Any] | None = None
    add_generation_prompt: bool = Field(True, description="End the prompt with the assistant's turn header.")
    continue_final_message: bool = Field(
        False, description="Continue the final (assistant) message; needs add_generation_prompt false."
    )
    # OpenAI's; as vLLM, a chat template variable, with `enable_thinking` (false for "none") where
    # chat_template_kwargs do not set it.
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None

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

    @model_validator(mode="after")
    def _messages(self):
        for i, message in enumerate(self.messages):
            if message.tool_calls is not None and message.role != "assistant":
                raise FieldValueError(f"messages.{i}.tool_calls", "only an assistant message has tool calls")
            if message.role == "tool" and message.tool_call_id is None:
                raise FieldValueError(f"messages.{i}.tool_call_id", "is required in a message of role 'tool'")
        return self

    @model_validator(mode="after")
    def _tools(self):
        so = self.structured_outputs
        constrained = so is not None and any(so.constraint(name) is not None for name in ("json", "regex", "choice"))
        check_tool_usage(self.tools, self.tool_choice, constrained)
        return self

    @model_validator(mode="after")
    def _generation_prompt(self):
        check_generation_prompt(self)
        return self

    def template_kwargs(self) -> dict[str, Any] | None:
        """The `chat_template_kwargs` to send: the client's, with add_generation_prompt and
        continue_final_message where they were given (as in vLLM, they win); None: nothing to
        send (a field given at its default value, alone, changes nothing)."""
        kwargs = dict(self.chat_template_kwargs or {})
        for name, default in (("add_generation_prompt", True), ("continue_final_message", False)):
            value = getattr(self, name)
            if name in self.model_fields_set and (value != default or name in kwargs):
                kwargs[name] = value
        if (effort := getattr(self, "reasoning_effort", None)) is not None:  # /tokenize has none
            kwargs["reasoning_effort"] = effort
            kwargs.setdefault("enable_thinking", effort != "none")
        return kwargs if kwargs or self.chat_template_kwargs is not None else None

    def tool_inputs(self) -> dict[str, Any]:
        """The model's `tools`, `tool_choice` and `parallel_tool_calls`, those given; none
        without tools (vLLM ignores the others then). `tool_choice` is JSON (a string too)."""
        if not self.tools:
            return {}
        values: dict[str, Any] = {"tools": [tool.model_dump(exclude_none=True) for tool in self.tools]}
        if self.tool_choice is not None:
            choice = self.tool_choice if isinstance(self.tool_choice, str) else self.tool_choice.model_dump()
            values["tool_choice"] = json.dumps(choice)
        if self.parallel_tool_calls is not None:
            values["parallel_tool_calls"] = self.parallel_tool_calls
        return values

    def sampling(self) -> dict[str, Any]:
        params = self.sampling_parameters(self.max_completion_tokens or self.max_tokens)
        if self.logprobs:
            params["logprobs"] = self.top_logprobs or 0
        if self.response_format and (structured := self.response_format.structured_outputs()):
            params["structured_outputs"] = structured
        return params


class ChatMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None  # null when the model only called tools, or only reasoned
    tool_calls: list[ToolCall] | None = OMITTED_IF_NONE  # left out when none, as vLLM does
    # vLLM's, with a reasoning parser: the thinking, under both of its names.
    reasoning_content: str | None = OMITTED_IF_NONE
    reasoning: str | None = OMITTED_IF_NONE


class DeltaMessage(BaseModel):
    """A chunk's delta carries only what it has (serving.chat dumps it without its nulls)."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


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


def check_generation_prompt(request: BaseModel) -> None:
    """vLLM's rule, in its words, on the variables the template gets (the model's default for
    add_generation_prompt is true, as vLLM's); chat and /tokenize render the same prompt."""
    kwargs = request.template_kwargs() or {}  # type: ignore[attr-defined]
    if kwargs.get("continue_final_message") and kwargs.get("add_generation_prompt", True):
        top_level = "continue_final_message" in request.model_fields_set
        raise FieldValueError(
            "continue_final_message" if top_level else "chat_template_kwargs",
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
        )
