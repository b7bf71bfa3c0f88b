"""The tensor protocol of our generation models, in one place (see docs/protocol.md).

It matches Triton's vllm_backend tensor for tensor, so clients written for it (and Triton's
`generate` / `generate_stream` endpoints) work unchanged, plus inputs and outputs of ours,
each optional: `messages` (a JSON list of chat messages rendered with the model's chat
template on the server), `input_ids`, `chat_template_kwargs`, the prompt's logprobs and the
token ids (the prompt inputs are read in `prompt_inputs`). This module is plain Python +
numpy: it parses inputs into a `GenerateRequest` and turns engine-neutral
`GenerationChunk`s into output arrays, with no Triton import, so every rule here is
unit-tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from triton_llm.errors import InvalidInput, json_object
from triton_llm.generation import request_options
from triton_llm.generation.prompt_inputs import flag, parse_prompt, text, truncate_prompt_tokens
from triton_llm.generation.types import RETURN_FLAGS, ChoiceDelta, GenerateRequest, GenerationChunk

# name, Triton data type, dims, optional. `text_input` is optional here (required in
# vllm_backend) only so that a request may carry `messages` or `input_ids` instead; one of
# them is required, which `parse_request` enforces.
INPUTS: list[dict[str, Any]] = [
    {"name": "text_input", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    {"name": "messages", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    # Ours: the prompt as token ids, and extra variables for the chat template (JSON).
    {"name": "input_ids", "data_type": "TYPE_INT64", "dims": [-1], "optional": True},
    {"name": "chat_template_kwargs", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    # Ours, vLLM's/OpenAI's fields: tool calling with `messages` (JSON; parallel_tool_calls a bool).
    {"name": "tools", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    {"name": "tool_choice", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    {"name": "parallel_tool_calls", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "stream", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "sampling_parameters", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    {"name": "exclude_input_in_output", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_finish_reason", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_cumulative_logprob", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_logprobs", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_num_input_tokens", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_num_output_tokens", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_prompt_logprobs", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_token_ids", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    # Ours: streamed responses carry num_input_tokens and finish_reason only where they say
    # something (first response; a choice finishing). Two tensors fewer per token.
    {"name": "sparse_outputs", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    # Ours, vLLM's /tokenize and /detokenize: the prompt's token ids (or the text of `input_ids`)
    # at once, no generation; with vLLM's two options of a tokenize request.
    {"name": "tokenize_only", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "add_special_tokens", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "return_token_strs", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
]

OUTPUTS: list[dict[str, Any]] = [
    {"name": "text_output", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "finish_reason", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "cumulative_logprob", "data_type": "TYPE_FP32", "dims": [-1]},
    {"name": "logprobs", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "num_input_tokens", "data_type": "TYPE_UINT32", "dims": [1]},
    {"name": "num_output_tokens", "data_type": "TYPE_UINT32", "dims": [-1]},
    # Ours, each only when asked for (return_prompt_logprobs, return_token_ids).
    {"name": "prompt_logprobs", "data_type": "TYPE_STRING", "dims": [1]},
    {"name": "prompt_token_ids", "data_type": "TYPE_INT64", "dims": [-1]},
    {"name": "token_ids", "data_type": "TYPE_STRING", "dims": [-1]},
    # Ours: what the model.json parsers found in a `messages` request's output (docs/tool-calling.md).
    {"name": "tool_calls", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "reasoning_output", "data_type": "TYPE_STRING", "dims": [-1]},
    # Ours, a `tokenize_only` answer's (with prompt_token_ids and num_input_tokens).
    {"name": "max_model_len", "data_type": "TYPE_UINT32", "dims": [1]},
    {"name": "token_strs", "data_type": "TYPE_STRING", "dims": [-1]},
]


def parse_sampling_json(raw: str | None) -> dict[str, Any]:
    return {} if raw is None or raw == "" else json_object(raw, "sampling_parameters")


def parse_request(get: Callable[[str], np.ndarray | None], parameters_json: str | None = None) -> GenerateRequest:
    """Build a GenerateRequest from input tensors.

    `get(name)` returns an input's numpy array or None. `parameters_json` holds the request
    parameters (what Triton's generate endpoint passes as "parameters"), used for sampling
    when no `sampling_parameters` tensor is given, as vllm_backend does.
    """
    if (control := text(get, "lora_control")) is not None:  # runtime LoRA: no prompt (lora_control.py)
        return GenerateRequest(lora_control=control)
    prompt = parse_prompt(get)
    stream = bool(flag(get, "stream"))
    exclude = flag(get, "exclude_input_in_output")
    # Ours: `false` when streaming puts the prompt at the head of the first response (vLLM's
    # `echo`); vllm_backend never streams it back, which stays the default.
    prepend = (not exclude) if exclude is not None else not stream

    sampling_raw = text(get, "sampling_parameters")
    sampling = parse_sampling_json(sampling_raw if sampling_raw is not None else parameters_json)
    # Request parameters of the generate endpoint also carry the flags handled above.
    if sampling_raw is None:
        for key in ("stream", "exclude_input_in_output", "sparse_outputs", *RETURN_FLAGS):
            sampling.pop(key, None)

    returns = {name: bool(flag(get, name)) for name in RETURN_FLAGS}
    tokenize_only = bool(flag(get, "tokenize_only"))
    add_special, token_strs = flag(get, "add_special_tokens"), flag(get, "return_token_strs")
    for name, value in (("add_special_tokens", add_special), ("return_token_strs", token_strs)):
        if value is not None and not tokenize_only:
            raise InvalidInput(name, "applies to tokenize_only requests only")
    if token_strs and prompt.ids is not None:
        raise InvalidInput("return_token_strs", "applies to a text or messages (input_ids are decoded)")
    return GenerateRequest(
        prompt=prompt.text,
        messages=prompt.messages,
        prompt_ids=prompt.ids,
        chat_template_kwargs=prompt.chat_template_kwargs,
        tools=prompt.tools,
        tool_choice=prompt.tool_choice,
        parallel_tool_calls=prompt.parallel_tool_calls,
        images=prompt.images,
        truncate_prompt_tokens=truncate_prompt_tokens(sampling),
        **request_options.take(sampling),
        stream=stream,
        prepend_input=prepend,
        sampling=sampling,
        returns=returns,
        sparse_outputs=bool(flag(get, "sparse_outputs")),
        tokenize_only=tokenize_only,
        add_special_tokens=add_special,
        return_token_strs=bool(token_strs),
    )


def _strings(values: list[str]) -> np.ndarray:
    return np.array([v.encode("utf-8") for v in values], dtype=np.object_)


def build_outputs(request: GenerateRequest, chunk: GenerationChunk, n: int, first: bool) -> dict[str, np.ndarray]:
    """Output arrays for one response. Element i of each per-choice output is choice i.

    Choices without news in this chunk get empty text and zero tokens, so positions stay
    stable while `n > 1` choices advance at different paces.
    """
    if request.tokenize_only:
        return _tokenized(request, chunk)
    if request.lora_control is not None:  # the control's answer, JSON
        return {"text_output": _strings([chunk.prompt])}
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
    if r["return_prompt_logprobs"] and first:
        outputs["prompt_logprobs"] = _strings([json.dumps(chunk.prompt_logprobs)])
    if r["return_token_ids"]:
        if first:
            outputs["prompt_token_ids"] = np.array(chunk.prompt_token_ids or [], dtype=np.int64)
        outputs["token_ids"] = _strings([json.dumps(c.token_ids or []) for c in choices])
    if request.returns_tool_calls:
        outputs["tool_calls"] = _strings([json.dumps(c.tool_calls or [], ensure_ascii=False) for c in choices])
    if request.returns_reasoning:
        outputs["reasoning_output"] = _strings([c.reasoning or "" for c in choices])
    return outputs


def _tokenized(request: GenerateRequest, chunk: GenerationChunk) -> dict[str, np.ndarray]:
    """A `tokenize_only` answer: `input_ids` decoded, or the prompt's token ids, their count
    and the context length (vLLM's TokenizeResponse); the return_* flags do not apply."""
    if request.prompt_ids is not None:
        return {"text_output": _strings([chunk.prompt])}
    outputs = {
        "prompt_token_ids": np.array(chunk.prompt_token_ids or [], dtype=np.int64),
        "num_input_tokens": np.array([chunk.num_input_tokens], dtype=np.uint32),
        "max_model_len": np.array([chunk.max_model_len or 0], dtype=np.uint32),
    }
    if request.return_token_strs:
        outputs["token_strs"] = _strings(chunk.token_strs or [])
    return outputs
