"""One integer rule for every request body: no integer beyond int64 leaves the frontend.

Every integer a client sends reaches Triton or an engine: as a request parameter (int64 in
Triton's protocol: tritonclient raises on a larger one, which was a 500), as an INT64 tensor
(token ids), or in JSON the engine reads into 64 bits (vLLM's sampling parameters, xgrammar's
JSON schemas). A bound written per field was missed by each route that added an integer
(a seed, then embeddings' `dimensions` and `truncate_prompt_tokens`, then rerank's and
score's), so the rule is kept by type, on the values: `schemas.common.RequestModel`, which
every body derives from, runs `check` on the validated request, so a route added later is
bounded without naming a field. It walks what pydantic made, not the raw JSON, because lax
parsing turns the string "9223372036854775808" into an int; it goes into lists, dicts and
sub-models, free-form JSON included (a JSON schema's `maximum` beyond int64 is refused by
xgrammar too). `bound_schema` writes the same range into the request models' JSON schemas,
so that /openapi.json states it and a fuzzer reading it tries its edges.

Tighter limits stay per field (schemas/limits.py), as pydantic constraints.
tests/unit/frontend/test_integer_bounds.py sends 2^63 and 2^80 to every integer field of
every POST route, found in /openapi.json, to keep this so.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from openai_frontend.errors import FieldValueError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
PROBLEM = f"must be an integer from {INT64_MIN} to {INT64_MAX} (64 bits)"


def fits(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


def check(request: BaseModel) -> None:
    """Raise `FieldValueError` naming where an integer in `request` lies beyond int64 (`prompt.0.3`)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(request, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, BaseModel):  # its fields by the names a client sends
            aliases = _aliases(type(value))
            items = ((aliases.get(name, name), item) for name, item in value.__dict__.items())
        elif isinstance(value, dict):
            items = value.items()
        elif isinstance(value, (list, tuple)):
            items = () if _ids_fit(value) else enumerate(value)
        elif isinstance(value, int) and not fits(value):  # bool is an int, and always fits
            raise FieldValueError(".".join(path) or None, PROBLEM)
        else:
            continue
        # Text, numbers that are not integers and nulls hold none: most of a chat's values.
        stack.extend((item, (*path, str(key))) for key, item in items if not isinstance(item, _LEAVES))


_LEAVES = (str, float, type(None))


@cache
def _aliases(model: type[BaseModel]) -> dict[str, str]:
    return {name: info.alias for name, info in model.model_fields.items() if info.alias}


def _ids_fit(items: list | tuple) -> bool:
    """Whether `items` is a list of integers that all fit, checked in C: a prompt holds up to
    a million token ids. False sends the walk through the items one by one."""
    if not items or type(items[0]) is not int:
        return False
    try:
        return INT64_MIN <= min(items) and max(items) <= INT64_MAX
    except TypeError:  # not all numbers
        return False


# JSON Schema's keywords whose values are schemas, or lists or maps of schemas.
_SUBSCHEMAS = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")


def bound_schema(schema: dict[str, Any]) -> None:
    """Give every integer in a model's JSON schema int64's range, within any tighter bound it has
    (pydantic's `json_schema_extra` hook; a sub-model's `$ref` is bounded by its own schema)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
            if "exclusiveMinimum" not in node:
                node["minimum"] = max(node.get("minimum", INT64_MIN), INT64_MIN)
            if "exclusiveMaximum" not in node:
                node["maximum"] = min(node.get("maximum", INT64_MAX), INT64_MAX)
        stack.extend(node[key] for key in _SUBSCHEMAS if key in node)
        stack.extend(item for key in _SCHEMA_LISTS for item in node.get(key, ()))
        stack.extend(item for key in _SCHEMA_MAPS for item in node.get(key, {}).values())
