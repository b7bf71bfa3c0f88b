"""OpenAI request -> model tensors -> decoded steps: the one module that knows both sides of
a generation request (/tokenize's `tokenize_only` request: `serving.tokenize`).

The tensor protocol is the models' (docs/protocol.md): we always ask for token counts
(usage is exact, never estimated) and finish reasons.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openai_frontend import request_log
from openai_frontend.backend import ModelInfo, ModelServer, Outputs
from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import InvalidField
from openai_frontend.schemas.limits import MAX_PROMPTS_IN_FLIGHT
from openai_frontend.serving.fields import for_endpoint
from openai_frontend.serving.logprobs import Positions


@dataclass
class Step:
    """One Triton response, decoded. Lists are per choice of the request."""

    texts: list[str]
    finish_reasons: list[str | None]
    num_output_tokens: list[int]
    num_input_tokens: int
    logprobs: list[Positions | None]
    token_ids: list[list[int] | None] = field(default_factory=list)  # per choice, when asked
    prompt_token_ids: list[int] | None = None  # the first response's, when asked
    prompt_logprobs: Positions | None = None  # ditto
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
    values = prompt_values(prompt, messages)
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


def prompt_values(prompt: str | list[int] | None, messages: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The prompt's tensor: `messages` (the model renders them), `text_input` or `input_ids`."""
    if messages is not None:
        return {"messages": messages}
    if isinstance(prompt, str):
        return {"text_input": prompt}
    return {"input_ids": np.array(prompt, dtype=np.int64)}


def check_declared(info: ModelInfo, values: dict[str, Any], asked_by: dict[str, str] | None = None) -> None:
    """The optional inputs of ours in `values` are the model's, or a 400 naming the field that
    needs them (`asked_by` overrides EXTENSIONS where another field asked for one)."""
    info.require({name: (asked_by or {}).get(name, EXTENSIONS[name]) for name in values if name in EXTENSIONS})


def strings(array: np.ndarray | None) -> list[str]:
    """A BYTES tensor's values as text, in order."""
    if array is None:
        return []
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]


def decode(outputs: Outputs) -> Step:
    texts = strings(outputs.get("text_output"))
    reasons = [None if r == "None" else r for r in strings(outputs.get("finish_reason"))] or [None] * len(texts)
    counts = outputs.get("num_output_tokens")
    num_output = [int(c) for c in counts.reshape(-1)] if counts is not None else [0] * len(texts)
    num_input = outputs.get("num_input_tokens")
    logprobs = [None if s == "null" else json.loads(s) for s in strings(outputs.get("logprobs"))]
    token_ids = [json.loads(s) for s in strings(outputs.get("token_ids"))]
    prompt_ids = outputs.get("prompt_token_ids")
    prompt_logprobs = strings(outputs.get("prompt_logprobs"))
    tool_calls = [json.loads(s) for s in strings(outputs.get("tool_calls"))]
    reasoning = strings(outputs.get("reasoning_output"))
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
    endpoint: Endpoint,
    request_id: str = "",
    sent: dict[str, str] | None = None,
) -> AsyncIterator[Step]:
    """The decoded responses of one model request made for `endpoint`, whose client is told
    of a refused input by its OpenAI name (`sent`: see `fields.openai_param`); `request_id` is
    Triton's id of the request."""
    tokens = request_log.counter()  # None unless the request log is on
    try:
        async for outputs in client.generate(model, values, request_id):
            step = decode(outputs)
            if tokens is not None:
                tokens.add(step.num_input_tokens, sum(step.num_output_tokens))
            yield step
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
