"""/v1/responses: OpenAI's Responses request, its input items and tools, with vLLM's extras.

The request runs on chat's path (serving/responses.py maps it onto a ChatCompletionRequest);
here are the shapes and the rules that need no model, each a 400 naming its field. Items are
read loosely where OpenAI's own objects carry fields we do not use (ids, statuses,
annotations), as a client passes its previous output back as it got it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas.common import RequestModel, StrictModel
from openai_frontend.schemas.limits import MAX_CONTENT_PARTS, MAX_MESSAGES, MAX_TOOLS
from openai_frontend.schemas.structured import StructuredOutputs
from openai_frontend.schemas.tools import NAME_PATTERN

# OpenAI's: at most 16 pairs, keys of 64 characters, values of 512.
MAX_METADATA = 16


class Item(BaseModel):
    # An item the client got from us (or OpenAI) carries fields of its own: they are let through.
    model_config = ConfigDict(extra="allow")


class TextContent(Item):
    type: Literal["input_text", "output_text", "text", "refusal", "summary_text", "reasoning_text"]
    text: str | None = None
    refusal: str | None = None


class ImageContent(Item):
    """An image: chat's image_url part (serving/responses_items.py), fetched and checked as chat's."""

    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


Content = Annotated[TextContent | ImageContent, Field(discriminator="type")]


class MessageItem(Item):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | Annotated[list[Content], Field(max_length=MAX_CONTENT_PARTS)]


class FunctionCallItem(Item):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItem(Item):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[Content]


class ReasoningItem(Item):
    type: Literal["reasoning"]
    summary: list[TextContent] = []
    content: list[TextContent] | None = None


def _item_type(value: Any) -> str:
    # EasyInputMessage has no `type`: a message.
    if isinstance(value, dict):
        return value.get("type", "message") if isinstance(value.get("type", "message"), str) else "message"
    return getattr(value, "type", "message")


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(_item_type),
]


class FunctionTool(StrictModel):
    type: Literal["function"]
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def for_chat(self) -> dict[str, Any]:
        function = self.model_dump(exclude={"type"}, exclude_none=True)
        return {"type": "function", "function": function}


class NamedFunction(StrictModel):
    type: Literal["function"]
    name: str


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("str")] | Annotated[NamedFunction, Tag("dict")],
    Discriminator(lambda value: "dict" if isinstance(value, (dict, NamedFunction)) else "str"),
]


class TextFormat(StrictModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_given(self):
        if self.type == "json_schema" and self.schema_ is None:
            raise FieldValueError("text.format.schema", "is required when type is 'json_schema'")
        return self

    def for_chat(self) -> dict[str, Any] | None:
        """Chat's `response_format` of the same constraint."""
        if self.type == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": self.name or "response", "schema": self.schema_}}
        return {"type": self.type} if self.type == "json_object" else None


class TextConfig(StrictModel):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(StrictModel):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesRequest(RequestModel):
    model: str
    input: str | Annotated[list[InputItem], Field(max_length=MAX_MESSAGES)]
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: Annotated[list[FunctionTool], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    user: str | None = None
    metadata: Annotated[dict[str, Annotated[str, Field(max_length=512)]], Field(max_length=MAX_METADATA)] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    store: bool = True
    background: bool = False
    stream: bool = False
    # Accepted as OpenAI's clients send them; nothing here changes with them.
    include: list[str] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    stream_options: dict[str, Any] | None = None
    # vLLM's extras (its ResponsesRequest takes them too).
    top_k: int | None = None
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    repetition_penalty: float | None = Field(None, gt=0.0)
    ignore_eos: bool = False
    structured_outputs: StructuredOutputs | None = None

    @model_validator(mode="after")
    def _rules(self):
        if self.background and not self.store:
            raise FieldValueError("background", "a background response must be stored (`store` true)")
        if self.background and self.stream:
            raise FieldValueError("stream", "streaming a background response is not supported; poll it instead")
        if self.tools == []:
            raise FieldValueError("tools", "must not be an empty array; give at least one tool or leave it out")
        if self.tool_choice not in (None, "none", "auto") and not self.tools:
            raise FieldValueError("tool_choice", "When using `tool_choice`, `tools` must be set.")
        if isinstance(self.tool_choice, NamedFunction) and self.tool_choice.name not in {t.name for t in self.tools}:
            raise FieldValueError("tool_choice", "The tool specified in `tool_choice` does not match any of `tools`")
        fmt = self.text.format if self.text else None
        if self.structured_outputs is not None and fmt is not None and fmt.type != "text":
            raise FieldValueError("structured_outputs", "Cannot specify both structured_outputs and text.format")
        for key in self.metadata or {}:
            if len(key) > 64:
                raise FieldValueError("metadata", f"keys are at most 64 characters: {key[:70]!r}")
        return self

    def items(self) -> list[BaseModel]:
        """The input as items (a string is one user message)."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input)
