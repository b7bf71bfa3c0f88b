"""OpenAI request -> model tensors -> decoded steps: the one module that knows both sides.

The tensor protocol is the models' (docs/protocol.md): we always ask for token counts
(usage is exact, never estimated) and finish reasons.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openai_frontend.backend import ModelInfo, ModelServer, Outputs
from openai_frontend.errors import BadRequest, InvalidField
from openai_frontend.schemas.limits import MAX_PROMPTS_IN_FLIGHT
from openai_frontend.serving.fields import for_endpoint


@dataclass
class Step:
    """One Triton response, decoded. Lists are per choice of the request."""

    texts: list[str]
    finish_reasons: list[str | None]
    num_output_tokens: list[int]
    num_input_tokens: int
    logprobs: list[list[dict[str, dict[str, Any]]] | None]
    token_ids: list[list[int] | None] = field(default_factory=list)  # per choice, when asked
    prompt_token_ids: list[int] | None = None  # the first response's, when asked
    prompt_logprobs: list[dict[str, dict[str, Any]]] | None = None  # ditto
    # Per choice, None where the model sent no such output: the calls (not streamed: whole;
    # streamed: this step's deltas, OpenAI's shapes) and the reasoning text (docs/protocol.md).
    tool_calls: list[list[dict[str, Any]] | None] = field(default_factory=list)
    reasoning: list[str | None] = field(default_factory=list)


# Optional model inputs of ours -> the OpenAI field that needs each (backend.ModelInfo.require).
EXTENSIONS = {
    "input_ids": "prompt",
    "chat_template_kwargs": "chat_template_kwargs",
    "return_prompt_logprobs": "prompt_logprobs",
    "return_token_ids": "return_token_ids",
    "tools": "tools",
    "tool_choice": "tool_choice",
    "parallel_tool_calls": "parallel_tool_calls",
    "add_special_tokens": "add_special_tokens",
    "return_token_strs": "return_token_strs",
}


def model_inputs(
    *,
    prompt: str | list[int] | None = None,
    messages: list[dict[str, Any]] | None = None,
    sampling: dict[str, Any],
    stream: bool,
    echo: bool = False,
    sparse: bool = False,
    chat_template_kwargs: dict[str, Any] | None = None,
    tool_inputs: dict[str, Any] | None = None,
    return_token_ids: bool = False,
) -> dict[str, Any]:
    """The tensors of one model request; the optional ones of ours only when used."""
    values = _prompt(prompt, messages)
    if chat_template_kwargs is not None:
        values["chat_template_kwargs"] = chat_template_kwargs
    values.update(tool_inputs or {})  # `tools`, `tool_choice`, `parallel_tool_calls`: those given
    values.update(
        stream=stream,
        sampling_parameters=sampling,
        # The prompt comes back at the head of the answer only for `echo`. Streamed, the router
        # echoes a text itself (any model can serve that); token ids only the model can decode.
        exclude_input_in_output=not (echo and (not stream or "input_ids" in values)),
        return_finish_reason=True,
        return_num_input_tokens=True,
        return_num_output_tokens=True,
    )
    if sampling.get("logprobs") is not None:
        values["return_logprobs"] = True
    if sampling.get("prompt_logprobs") is not None:
        values["return_prompt_logprobs"] = True
    if return_token_ids:
        values["return_token_ids"] = True
    if sparse and stream:
        # Counts and reasons only where they change: ~20% less CPU per streamed token
        # across stub, Triton and frontend (docs/benchmarks.md).
        values["sparse_outputs"] = True
    return values


def _prompt(prompt: str | list[int] | None, messages: list[dict[str, Any]] | None) -> dict[str, Any]:
    if messages is not None:
        return {"messages": messages}
    if isinstance(prompt, str):
        return {"text_input": prompt}
    return {"input_ids": np.array(prompt, dtype=np.int64)}


def check_declared(info: ModelInfo, values: dict[str, Any], asked_by: dict[str, str] | None = None) -> None:
    """The optional inputs of ours in `values` are the model's, or a 400 naming the field that
    needs them (`asked_by` overrides EXTENSIONS where another field asked for one)."""
    info.require({name: (asked_by or {}).get(name, EXTENSIONS[name]) for name in values if name in EXTENSIONS})


def _strings(array: np.ndarray | None) -> list[str]:
    if array is None:
        return []
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]


def decode(outputs: Outputs) -> Step:
    texts = _strings(outputs.get("text_output"))
    reasons = [None if r == "None" else r for r in _strings(outputs.get("finish_reason"))] or [None] * len(texts)
    counts = outputs.get("num_output_tokens")
    num_output = [int(c) for c in counts.reshape(-1)] if counts is not None else [0] * len(texts)
    num_input = outputs.get("num_input_tokens")
    logprobs = [None if s == "null" else json.loads(s) for s in _strings(outputs.get("logprobs"))]
    token_ids = [json.loads(s) for s in _strings(outputs.get("token_ids"))]
    prompt_ids = outputs.get("prompt_token_ids")
    prompt_logprobs = _strings(outputs.get("prompt_logprobs"))
    tool_calls = [json.loads(s) for s in _strings(outputs.get("tool_calls"))]
    reasoning = _strings(outputs.get("reasoning_output"))
    return Step(
        texts=texts,
        finish_reasons=reasons,
        num_output_tokens=num_output,
        num_input_tokens=int(num_input.reshape(-1)[0]) if num_input is not None else 0,
        logprobs=logprobs or [None] * len(texts),
        token_ids=token_ids or [None] * len(texts),
        prompt_token_ids=[int(i) for i in prompt_ids.reshape(-1)] if prompt_ids is not None else None,
        prompt_logprobs=json.loads(prompt_logprobs[0]) if prompt_logprobs else None,
        tool_calls=tool_calls or [None] * len(texts),
        reasoning=reasoning or [None] * len(texts),
    )


async def steps(
    client: ModelServer,
    model: str,
    values: dict[str, Any],
    endpoint: str,
    request_id: str = "",
    sent: dict[str, str] | None = None,
) -> AsyncIterator[Step]:
    """The decoded responses of one model request made for `endpoint`, whose client is told
    of a refused input by its OpenAI name (`sent`: see `fields.openai_param`); `request_id` is
    Triton's id of the request."""
    try:
        async for outputs in client.generate(model, values, request_id):
            yield decode(outputs)
    except InvalidField as exc:
        raise for_endpoint(exc, endpoint, sent=sent) from None


async def merge(streams: list[AsyncIterator[Step]]) -> AsyncIterator[tuple[int, Step]]:
    """Interleave several step streams (one per prompt) as their steps arrive, at most
    `MAX_PROMPTS_IN_FLIGHT` of them running at once (limits.py)."""
    if len(streams) == 1:
        async for step in streams[0]:
            yield 0, step
        return
    queue: asyncio.Queue = asyncio.Queue()
    done = object()
    gate = asyncio.Semaphore(MAX_PROMPTS_IN_FLIGHT)

    async def pump(i: int, stream: AsyncIterator[Step]) -> None:
        try:
            async with gate:
                async for step in stream:
                    await queue.put((i, step))
        except BaseException as exc:  # hand errors to the consumer
            await queue.put((i, exc))
        finally:
            await queue.put((i, done))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            i, item = await queue.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def top_logprobs(step_logprobs: dict[str, dict[str, Any]]) -> tuple[str, float, dict[str, float]]:
    """(sampled token, its logprob, {token: logprob} of the candidates) for one position.

    The model sends {token_id: {"logprob", "rank", "decoded_token"}}, the sampled token
    first (vLLM's order).
    """
    entries = list(step_logprobs.values())
    sampled = entries[0]
    candidates = {e["decoded_token"]: e["logprob"] for e in entries}
    return sampled["decoded_token"], sampled["logprob"], candidates


def prompt_logprobs(positions: list[dict[str, dict[str, Any]]] | None) -> list[dict[str, Any] | None] | None:
    """The model's prompt logprobs as vLLM's responses carry them: `null` for the first token
    (nothing predicts it; the model sends it with a null logprob), then {token_id: Logprob}."""
    if positions is None:
        return None
    return [None if i == 0 else position for i, position in enumerate(positions)]


# -- /tokenize and /detokenize: one `tokenize_only` request, answered by the model's tokenizer --


@dataclass
class Tokenized:
    """A `tokenize_only` answer, decoded: a prompt's token ids (with their strings when asked),
    or the text of token ids."""

    tokens: list[int]
    token_strs: list[str] | None
    max_model_len: int
    text: str


def tokenize_inputs(
    *,
    prompt: str | list[int] | None = None,
    messages: list[dict[str, Any]] | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    add_special_tokens: bool | None = None,
    return_token_strs: bool = False,
) -> dict[str, Any]:
    """The tensors of a `tokenize_only` request: a text or messages to tokenize, or ids to decode."""
    values = {**_prompt(prompt, messages), "tokenize_only": True}
    if chat_template_kwargs is not None:
        values["chat_template_kwargs"] = chat_template_kwargs
    if tools:
        values["tools"] = tools
    if add_special_tokens is not None:
        values["add_special_tokens"] = add_special_tokens
    if return_token_strs:
        values["return_token_strs"] = True
    return values


def check_tokenize(info: ModelInfo, values: dict[str, Any]) -> None:
    """The model answers `tokenize_only` (and the other inputs of `values`), or a 400 naming it."""
    if "tokenize_only" not in info.inputs:
        raise BadRequest(f"The model '{info.name}' cannot tokenize: it declares no tokenize_only input", param="model")
    check_declared(info, values)


async def tokenized(
    client: ModelServer, model: str, values: dict[str, Any], fields: Mapping[str, str], request_id: str = ""
) -> Tokenized:
    """The answer of one `tokenize_only` request; a refused input is named as the client's
    field (`fields`: model input -> request field, e.g. `input_ids` -> `tokens`)."""
    outputs: Outputs = {}
    try:
        async for response in client.generate(model, values, request_id):
            outputs.update(response)
    except InvalidField as exc:
        param = fields.get(exc.field or "", exc.field)
        raise (BadRequest(f"{param}: {exc.problem}", param=param) if param else exc) from None
    ids, length = outputs.get("prompt_token_ids"), outputs.get("max_model_len")
    return Tokenized(
        tokens=[int(i) for i in ids.reshape(-1)] if ids is not None else [],
        token_strs=_strings(outputs["token_strs"]) if "token_strs" in outputs else None,
        max_model_len=int(length.reshape(-1)[0]) if length is not None else 0,
        text="".join(_strings(outputs.get("text_output"))),
    )
