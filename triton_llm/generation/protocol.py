"""The tensor protocol of our generation models, in one place (see docs/protocol.md).

It matches Triton's vllm_backend tensor for tensor, so clients written for it (and Triton's
`generate` / `generate_stream` endpoints) work unchanged, plus one input of ours:
`messages`, a JSON list of chat messages rendered with the model's chat template on the
server. This module is plain Python + numpy: it parses inputs into a `GenerateRequest`
and turns engine-neutral `GenerationChunk`s into output arrays, with no Triton import, so
every rule here is unit-tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from triton_llm.errors import InvalidInput, json_object
from triton_llm.generation.types import RETURN_FLAGS, ChoiceDelta, GenerateRequest, GenerationChunk

# name, Triton data type, dims, optional. `text_input` is optional here (required in
# vllm_backend) only so that a request may carry `messages` instead; one of them is
# required, which `parse_request` enforces.
INPUTS: list[dict[str, Any]] = [
    {"name": "text_input", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    {"name": "messages", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    {"name": "stream", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "sampling_parameters", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    {"name": "exclude_input_in_output", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_finish_reason", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_cumulative_logprob", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_logprobs", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_num_input_tokens", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_num_output_tokens", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    # Ours: streamed responses carry num_input_tokens and finish_reason only where they say
    # something (first response; a choice finishing). Two tensors fewer per token.
    {"name": "sparse_outputs", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
]

OUTPUTS: list[dict[str, Any]] = [
    {"name": "text_output", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "finish_reason", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "cumulative_logprob", "data_type": "TYPE_FP32", "dims": [-1]},
    {"name": "logprobs", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "num_input_tokens", "data_type": "TYPE_UINT32", "dims": [1]},
    {"name": "num_output_tokens", "data_type": "TYPE_UINT32", "dims": [-1]},
]


_ROLES = {"system", "user", "assistant", "tool", "developer"}


def _scalar(value: np.ndarray | None) -> Any:
    if value is None:
        return None
    flat = np.asarray(value).reshape(-1)
    if flat.size != 1:
        raise InvalidInput("input", f"expected one element, got {flat.size}")
    item = flat[0]
    return item.decode("utf-8") if isinstance(item, bytes) else item.item() if hasattr(item, "item") else item


def _text(get: Callable[[str], np.ndarray | None], name: str) -> str | None:
    try:
        value = _scalar(get(name))
    except InvalidInput as exc:
        raise InvalidInput(name, exc.problem) from None
    except UnicodeDecodeError:
        raise InvalidInput(name, "is not valid UTF-8") from None
    if value is not None and not isinstance(value, str):
        raise InvalidInput(name, "must be a string")
    return value


def _flag(get: Callable[[str], np.ndarray | None], name: str) -> bool | None:
    value = get(name)
    if value is None:
        return None
    try:
        return bool(_scalar(value))
    except InvalidInput as exc:
        raise InvalidInput(name, exc.problem) from None


def parse_messages(raw: str) -> list[dict[str, Any]]:
    """Validate an OpenAI-style message list; text parts are joined into one string."""
    try:
        messages = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput("messages", f"is not valid JSON: {exc.msg}") from None
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages", "must be a non-empty JSON list of messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidInput(where, "must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidInput(f"{where}.role", f"must be one of {sorted(_ROLES)}, got {role!r}")
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise InvalidInput(f"{where}.content[{j}]", "only text parts are supported")
                parts.append(part["text"])
            content = "".join(parts)
        elif content is None and role == "assistant":
            content = ""
        if not isinstance(content, str):
            raise InvalidInput(f"{where}.content", "must be a string or a list of text parts")
        out.append({**message, "content": content})
    return out


def parse_sampling_json(raw: str | None) -> dict[str, Any]:
    return {} if raw is None or raw == "" else json_object(raw, "sampling_parameters")


def parse_request(get: Callable[[str], np.ndarray | None], parameters_json: str | None = None) -> GenerateRequest:
    """Build a GenerateRequest from input tensors.

    `get(name)` returns an input's numpy array or None. `parameters_json` holds the request
    parameters (what Triton's generate endpoint passes as "parameters"), used for sampling
    when no `sampling_parameters` tensor is given, as vllm_backend does.
    """
    prompt = _text(get, "text_input")
    raw_messages = _text(get, "messages")
    if prompt is not None and raw_messages is not None:
        raise InvalidInput("messages", "give either text_input or messages, not both")
    if raw_messages is not None:
        messages = parse_messages(raw_messages)
    elif prompt is None:
        raise InvalidInput("text_input", "is required (or give messages)")
    elif prompt == "":
        raise InvalidInput("text_input", "must not be empty")
    else:
        messages = None

    stream = bool(_flag(get, "stream"))
    exclude = _flag(get, "exclude_input_in_output")
    prepend = (not exclude) if exclude is not None else not stream
    if prepend and stream:
        raise InvalidInput(
            "exclude_input_in_output", "must not be false when streaming (the prompt is never streamed back)"
        )

    sampling_raw = _text(get, "sampling_parameters")
    sampling = parse_sampling_json(sampling_raw if sampling_raw is not None else parameters_json)
    # Request parameters of the generate endpoint also carry the flags handled above.
    if sampling_raw is None:
        for key in ("stream", "exclude_input_in_output", "sparse_outputs", *RETURN_FLAGS):
            sampling.pop(key, None)

    returns = {name: bool(_flag(get, name)) for name in RETURN_FLAGS}
    return GenerateRequest(
        prompt=prompt,
        messages=messages,
        stream=stream,
        prepend_input=prepend,
        sampling=sampling,
        returns=returns,
        sparse_outputs=bool(_flag(get, "sparse_outputs")),
    )


def _strings(values: list[str]) -> np.ndarray:
    return np.array([v.encode("utf-8") for v in values], dtype=np.object_)


def build_outputs(request: GenerateRequest, chunk: GenerationChunk, n: int, first: bool) -> dict[str, np.ndarray]:
    """Output arrays for one response. Element i of each per-choice output is choice i.

    Choices without news in this chunk get empty text and zero tokens, so positions stay
    stable while `n > 1` choices advance at different paces.
    """
    by_index = {c.index: c for c in chunk.choices}
    empty = ChoiceDelta(index=-1)
    choices = [by_index.get(i, empty) for i in range(n)]

    prefix = chunk.prompt if (first and request.prepend_input) else ""
    outputs = {"text_output": _strings([prefix + c.text for c in choices])}
    r = request.returns
    dense = not (request.sparse_outputs and request.stream)  # one response: it carries everything
    if r["return_finish_reason"] and (dense or any(c.finish_reason for c in choices)):
        # str(None) == "None" for unfinished choices, as vllm_backend sends it.
        outputs["finish_reason"] = _strings([str(c.finish_reason) for c in choices])
    if r["return_cumulative_logprob"]:
        outputs["cumulative_logprob"] = np.array(
            [c.cumulative_logprob if c.cumulative_logprob is not None else np.nan for c in choices],
            dtype=np.float32,
        )
    if r["return_logprobs"]:
        outputs["logprobs"] = _strings(["null" if c.logprobs is None else json.dumps(c.logprobs) for c in choices])
    if r["return_num_input_tokens"] and (dense or first):
        outputs["num_input_tokens"] = np.array([chunk.num_input_tokens], dtype=np.uint32)
    if r["return_num_output_tokens"]:
        outputs["num_output_tokens"] = np.array([c.num_tokens for c in choices], dtype=np.uint32)
    return outputs
