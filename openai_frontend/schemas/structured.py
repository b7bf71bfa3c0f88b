"""vLLM's `structured_outputs` request field (its `StructuredOutputsParams`), with vLLM's names.

Completions and chat take it; chat's `response_format` becomes one of its constraints. The
frontend checks its shape (one constraint, the right types) so that the OpenAPI document
describes it; the model's engine checks the constraint itself (a regex that does not
compile, a schema it cannot enforce) and names the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas.limits import MAX_CHOICES

CONSTRAINTS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")


class StructuredOutputs(BaseModel):
    """Exactly one constraint, then options (vLLM's defaults)."""

    model_config = ConfigDict(extra="forbid")  # as every request model (common.StrictModel)

    json_: str | dict[str, Any] | None = Field(None, alias="json", description="A JSON schema the output follows.")
    regex: str | None = Field(None, min_length=1, description="A regular expression the output matches.")
    choice: Annotated[list[str], Field(min_length=1, max_length=MAX_CHOICES)] | None = Field(
        None, description="The output is one of these."
    )
    grammar: str | None = Field(None, min_length=1, description="A context-free grammar (EBNF/Lark) of the output.")
    json_object: bool | None = Field(None, description="Any JSON object.")
    structural_tag: str | None = Field(None, min_length=1, description="vLLM's structural tag, as JSON text.")
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None

    @model_validator(mode="after")
    def _one_constraint(self):
        given = [name for name in CONSTRAINTS if self.constraint(name) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise FieldValueError("structured_outputs", f"takes exactly one of {', '.join(CONSTRAINTS)}; got {got}")
        return self

    def constraint(self, name: str) -> Any:
        return self.json_ if name == "json" else getattr(self, name)

    def to_engine(self) -> dict[str, Any]:
        """As vLLM's `StructuredOutputsParams` keywords: what was given, under vLLM's names."""
        return self.model_dump(by_alias=True, exclude_defaults=True)
