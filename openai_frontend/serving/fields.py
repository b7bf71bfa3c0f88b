"""The models' input names -> the OpenAI parameters they came from, per endpoint: one table.

A model names the input it refuses as data (`param` of its error, docs/protocol.md#errors);
the client wrote an OpenAI request, so the error it gets names that request's field. Every
endpoint renames through `for_endpoint`. A name the table does not know passes through as it
is: a new model input keeps its name instead of losing it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import BadRequest, InvalidField

# A row of the model's whole request -> the client's field of that text: for an endpoint whose
# rows come from several request fields in an order only its request knows (scoring's sides).
Rows = Callable[[int], str]
ROW = ""  # in _INPUTS: each row of this input is named by the request's `Rows`

# endpoint -> {model input (the name before any `.` or `[`) -> OpenAI parameter}. /tokenize is
# named as the chat or completion whose prompt it tokenizes.
_INPUTS: dict[Endpoint, dict[str, str]] = {
    Endpoint.COMPLETIONS: {"text_input": "prompt", "input_ids": "prompt"},
    Endpoint.CHAT: {"text_input": "messages"},  # the prompt the model rendered from `messages`
    Endpoint.EMBEDDINGS: {"text_input": "input"},
    Endpoint.SCORE: {"text_input": ROW, "text_pair": ROW},  # a text of either side, or a pair
    Endpoint.DETOKENIZE: {"input_ids": "tokens"},
    Endpoint.CLASSIFY: {"text_input": "input"},
    Endpoint.POOLING: {"text_input": "input"},
    Endpoint.MESSAGES: {"text_input": "messages"},
}
# endpoint -> {sampling parameter -> OpenAI parameter}, where they differ
_SAMPLING: dict[Endpoint, dict[str, str]] = {
    Endpoint.CHAT: {"structured_outputs": "response_format"},
    Endpoint.MESSAGES: {"stop": "stop_sequences"},
}
# a name, an optional index, the rest: `text_input[3]`, `sampling_parameters.max_tokens`
_FIELD = re.compile(r"(?P<name>[^.\[]+)(?:\[(?P<index>\d+)\])?(?P<rest>.*)", re.DOTALL)


def openai_param(
    endpoint: Endpoint, field: str, offset: int = 0, sent: Mapping[str, str] | None = None, rows: Rows | None = None
) -> str:
    """The OpenAI parameter of model input `field` on `endpoint`.

    `sampling_parameters.max_tokens` -> `max_tokens`; `text_input` -> `prompt` (completions)
    or `messages` (chat); `text_input[3]` -> `input[3 + offset]` on embeddings, whose request
    went to the model in pieces, this one starting at text `offset`. `sent` names what this
    request called a sampling parameter where it had a choice (chat's `max_completion_tokens`);
    `rows` names a row of an input the table marks ROW (scoring: `documents[2]`).
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
    if renamed == ROW:  # one whole row only: the input itself, or a part of a row, keeps its name
        return rows(int(index) + offset) if rows is not None and index is not None and not rest else field
    if index is not None:
        renamed += f"[{int(index) + offset}]"
    return renamed + rest


def for_endpoint(
    exc: InvalidField,
    endpoint: Endpoint,
    offset: int = 0,
    sent: Mapping[str, str] | None = None,
    rows: Rows | None = None,
) -> BadRequest:
    """The model's error as the endpoint's client sees it: its parameter, and a message naming it."""
    if not exc.field:
        return exc
    param = openai_param(endpoint, exc.field, offset, sent, rows)
    return BadRequest(f"{param}: {exc.problem}", param=param)
