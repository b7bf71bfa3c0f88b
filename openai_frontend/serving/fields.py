"""The models' input names -> the OpenAI parameters they came from, per endpoint: one table.

A model names the input it refuses as data (`param` of its error, docs/protocol.md#errors);
the client wrote an OpenAI request, so the error it gets names that request's field. A name
the table does not know passes through as it is: a new model input keeps its name instead
of losing it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from openai_frontend.errors import BadRequest, InvalidField

# endpoint -> {model input (the name before any `.` or `[`) -> OpenAI parameter}
_INPUTS: dict[str, dict[str, str]] = {
    "completions": {"text_input": "prompt", "input_ids": "prompt"},
    "chat": {"text_input": "messages"},  # the prompt the model rendered from `messages`
    "embeddings": {"text_input": "input"},
}
# endpoint -> {sampling parameter -> OpenAI parameter}, where they differ
_SAMPLING: dict[str, dict[str, str]] = {
    "chat": {"structured_outputs": "response_format"},
}
# a name, an optional index, the rest: `text_input[3]`, `sampling_parameters.max_tokens`
_FIELD = re.compile(r"(?P<name>[^.\[]+)(?:\[(?P<index>\d+)\])?(?P<rest>.*)", re.DOTALL)


def openai_param(endpoint: str, field: str, offset: int = 0, sent: Mapping[str, str] | None = None) -> str:
    """The OpenAI parameter of model input `field` on `endpoint`.

    `sampling_parameters.max_tokens` -> `max_tokens`; `text_input` -> `prompt` (completions)
    or `messages` (chat); `text_input[3]` -> `input[3 + offset]` on embeddings, whose request
    went to the model in pieces, this one starting at text `offset`. `sent` names what this
    request called a sampling parameter where it had a choice (chat's `max_completion_tokens`).
    """
    match = _FIELD.fullmatch(field)
    if match is None:
        return field
    name, index, rest = match["name"], match["index"], match["rest"]
    if name == "sampling_parameters" and index is None and rest.startswith("."):
        inner, dot, deeper = rest[1:].partition(".")
        name = (sent or {}).get(inner) or _SAMPLING.get(endpoint, {}).get(inner, inner)
        return name + dot + deeper
    renamed = _INPUTS.get(endpoint, {}).get(name)
    if renamed is None:
        return field
    if index is not None:
        renamed += f"[{int(index) + offset}]"
    return renamed + rest


def for_endpoint(
    exc: InvalidField, endpoint: str, offset: int = 0, sent: Mapping[str, str] | None = None
) -> BadRequest:
    """The model's error as the endpoint's client sees it: its parameter, and a message naming it."""
    if exc.field is None:
        return exc
    param = openai_param(endpoint, exc.field, offset, sent)
    return BadRequest(f"{param}: {exc.problem}", param=param)
