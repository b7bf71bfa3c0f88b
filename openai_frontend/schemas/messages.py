"""Anthropic's Messages API: /v1/messages and /v1/messages/count_tokens, the fields vLLM 0.32
serves (vllm/entrypoints/anthropic/protocol.py), checked as Anthropic's API checks them: an
unknown field is refused by name, `max_tokens` is required.

A content block is one model with every block type's fields, each type's own checked by
`_fields` (vLLM's shape too), so that an error names `messages.0.content.1.input` rather
than a union member. Requests become chat requests in `serving/messages_chat.py`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas.common import OMITTED_IF_NONE, RequestModel, StrictModel
from openai_frontend.schemas.limits import MAX_CONTENT_PARTS, MAX_MESSAGES, MAX_STOP, MAX_TOOLS
from openai_frontend.schemas.tools import NAME_PATTERN

BlockType = Literal["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"]
# Each block type's fields besides `type`: (required, optional). cache_control, Anthropic's
# prompt-caching hint, is accepted on every block and not used here.
_BLOCK_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "text": ({"text"}, {"citations"}),
    "image": ({"source"}, set()),
    "tool_use": ({"id", "name", "input"}, {"caller", "toolset_name"}),  # as Anthropic's answers carry them
    "tool_result": ({"tool_use_id"}, {"content", "is_error"}),
    "thinking": ({"thinking"}, {"signature"}),
    "redacted_thinking": ({"data"}, set()),
}


class ContentBlock(StrictModel):
    type: BlockType
    text: str | None = None
    citations: list[dict[str, Any]] | None = None
    source: dict[str, Any] | None = None  # an image's: {"type": "base64"|"url", ...}
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    caller: dict[str, Any] | None = None
    toolset_name: str | None = None
    tool_use_id: str | None = None
    # A tool_result's content: a string, or text and image blocks.
    content: str | Annotated[list[ContentBlock], Field(max_length=MAX_CONTENT_PARTS)] | None = None
    is_error: bool | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    cache_control: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _fields(self):
        required, optional = _BLOCK_FIELDS[self.type]
        given = self.model_fields_set - {"type", "cache_control"}
        if missing := sorted(name for name in required if getattr(self, name) is None):
            raise ValueError(f"a {self.type} block needs `{missing[0]}`")
        if extra := sorted(given - required - optional):
            raise ValueError(f"`{extra[0]}` is not a field of a {self.type} block")
        if self.type == "tool_result" and isinstance(self.content, list):
            if kinds := {b.type for b in self.content} - {"text", "image"}:
                raise ValueError(f"a tool_result's content holds text and image blocks, not {sorted(kinds)[0]}")
        return self


class SystemBlock(StrictModel):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None
    citations: list[dict[str, Any]] | None = None


class AnthropicMessage(StrictModel):
    # "system" inside `messages` is vLLM's (Claude Code's reminders); Anthropic's API has two roles.
    role: Literal["user", "assistant", "system"]
    content: str | Annotated[list[ContentBlock], Field(max_length=MAX_CONTENT_PARTS)]


class AnthropicTool(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None  # Anthropic's server tools (web search...) are not served
    strict: bool | None = None
    cache_control: dict[str, Any] | None = None


class AnthropicToolChoice(StrictModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @model_validator(mode="after")
    def _name(self):
        if (self.type == "tool") != (self.name is not None):
            raise ValueError("`name` is given with type 'tool', and only then")
        return self


class Thinking(StrictModel):
    """Extended thinking: the model's chat template turns it on or off (`enable_thinking`), and
    its reasoning parser's output comes back as thinking blocks. A budget is checked, as vLLM
    does, and not enforced (the engines have no thinking budget)."""

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(None, ge=1024)
    display: Literal["summarized", "omitted", "updates"] | None = None

    @model_validator(mode="after")
    def _budget(self):
        if self.type == "enabled" and self.budget_tokens is None:
            raise ValueError("type 'enabled' needs `budget_tokens`")
        return self


class OutputFormat(StrictModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(StrictModel):
    format: OutputFormat | None = None  # structured output: the chat's response_format json_schema
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None  # a hint; not used here


class Metadata(StrictModel):
    user_id: str | None = Field(None, max_length=256)


class _Prompt(RequestModel):
    """The fields that make the prompt: the same in a request and in its count_tokens."""

    model: str = Field(min_length=1)
    messages: list[AnthropicMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    system: str | Annotated[list[SystemBlock], Field(max_length=MAX_CONTENT_PARTS)] | None = None
    tools: Annotated[list[AnthropicTool], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: AnthropicToolChoice | None = None
    thinking: Annotated[Thinking, Field(description="Needs a model with a reasoning parser.")] | None = None
    output_config: OutputConfig | None = None
    cache_control: dict[str, Any] | None = None  # Anthropic's prompt-caching hint: accepted, not used
    # vLLM's: extra variables for the model's chat template.
    chat_template_kwargs: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _blocks_fit_roles(self):
        for i, message in enumerate(self.messages):
            for j, block in enumerate(message.content if isinstance(message.content, list) else []):
                allowed = {"user": {"text", "image", "tool_result"}, "assistant": {"text", "tool_use", "thinking",
                           "redacted_thinking"}, "system": {"text"}}[message.role]  # fmt: skip
                if block.type not in allowed:
                    raise FieldValueError(
                        f"messages.{i}.content.{j}.type", f"a {message.role} message has no {block.type} block"
                    )
        return self

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self):
        choice = self.tool_choice
        if choice is None or choice.type == "none":
            return self
        if not self.tools:
            raise FieldValueError("tool_choice", f"type '{choice.type}' needs `tools`")
        if choice.type == "tool" and choice.name not in {t.name for t in self.tools}:
            raise FieldValueError("tool_choice.name", f"no tool in `tools` is named {choice.name!r}")
        return self


class MessagesRequest(_Prompt):
    max_tokens: int = Field(ge=1)
    metadata: Metadata | None = None
    stop_sequences: Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=MAX_STOP)] | None = None
    stream: bool = False
    # Anthropic's ranges.
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, description="0: every token, as without it.")
    # Accepted as the SDK sends them: this server has one tier, one speed, one place.
    service_tier: Literal["auto", "standard_only"] | None = None
    speed: Literal["standard", "fast"] | None = None
    inference_geo: str | None = None

    @model_validator(mode="after")
    def _budget_below_max_tokens(self):
        # vLLM's rule, in its words.
        if self.thinking and self.thinking.budget_tokens is not None and self.thinking.budget_tokens >= self.max_tokens:
            raise FieldValueError("thinking.budget_tokens", "thinking.budget_tokens must be less than max_tokens")
        return self


class CountTokensRequest(_Prompt):
    pass


class ResponseBlock(BaseModel):
    type: Literal["text", "tool_use", "thinking"]
    text: str | None = OMITTED_IF_NONE
    id: str | None = OMITTED_IF_NONE
    name: str | None = OMITTED_IF_NONE
    input: dict[str, Any] | None = OMITTED_IF_NONE
    thinking: str | None = OMITTED_IF_NONE
    signature: str | None = OMITTED_IF_NONE


class MessagesUsage(BaseModel):
    input_tokens: int
    output_tokens: int


StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"] | None


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class MessagesResponse(BaseModel):
    id: str = Field(default_factory=message_id)
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    content: list[ResponseBlock]
    model: str
    stop_reason: StopReason = None
    stop_sequence: str | None = None
    usage: MessagesUsage


class ContextManagement(BaseModel):
    original_input_tokens: int


class CountTokensResponse(BaseModel):
    input_tokens: int
    context_management: ContextManagement | None = None  # vLLM's
