"""Chat's tool calling, in OpenAI's shapes: the tools a request offers, its `tool_choice`, the
calls an assistant message made, and the calls of a response (whole, or streamed deltas).

The model renders the tools with its chat template and finds the calls in its output
(docs/protocol.md); here are the shapes and vLLM's request rules that need no model
(`check_tool_usage`), each a 400 naming its field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas.common import StrictModel

# OpenAI's rule for a function's name.
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


class FunctionDefinition(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="A JSON Schema of the function's arguments.")
    strict: bool | None = None


class Tool(StrictModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(StrictModel):
    name: str


class NamedToolChoice(StrictModel):
    type: Literal["function"] = "function"
    function: NamedFunction


# Told apart by the JSON type, so that a refusal names the member's field, not the member
# (errors.py leaves the tags "str" and "dict" out of the field's name).
ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("str")] | Annotated[NamedToolChoice, Tag("dict")],
    Discriminator(lambda value: "dict" if isinstance(value, (dict, NamedToolChoice)) else "str"),
]


class FunctionCall(BaseModel):
    name: str
    arguments: str = Field(description="The arguments as a JSON object, in a string.")


class ToolCall(BaseModel):
    """A call an assistant made: in a request's assistant message, and in a response."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class DeltaFunctionCall(BaseModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(BaseModel):
    """A streamed piece of call `index`: its id, type and name come once, its arguments in pieces."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None


def check_tool_usage(tools: list[Tool] | None, tool_choice: ToolChoice | None, constrained: bool) -> None:
    """vLLM's rules, in its words (ChatCompletionRequest.check_tool_usage; and, for a request
    `constrained` by structured_outputs' json, regex or choice, check_structured_outputs_count)."""
    if tools == []:
        raise FieldValueError(
            "tools", "`tools` must not be an empty array. Either provide at least one tool or omit the field entirely."
        )
    if tool_choice is None or tool_choice == "none":
        return
    if tools is None:
        raise FieldValueError("tool_choice", "When using `tool_choice`, `tools` must be set.")
    if isinstance(tool_choice, NamedToolChoice):
        if tool_choice.function.name not in {t.function.name for t in tools}:
            raise FieldValueError(
                "tool_choice", "The tool specified in `tool_choice` does not match any of the specified `tools`"
            )
        if constrained:
            raise FieldValueError(
                "structured_outputs", "You can only either use constraints for structured outputs or tools, not both."
            )
