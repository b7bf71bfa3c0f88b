"""OpenAI request -> model tensors -> decoded steps: the one module that knows both sides.

The tensor protocol is the models' (docs/protocol.md): we always ask for token counts
(usage is exact, never estimated) and finish reasons.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from openai_frontend.backend import ModelServer, Outputs
from openai_frontend.errors import InvalidField
from openai_frontend.serving.fields import for_endpoint


@dataclass
class Step:
    """One Triton response, decoded. Lists are per choice of the request."""

    texts: list[str]
    finish_reasons: list[str | None]
    num_output_tokens: list[int]
    num_input_tokens: int
    logprobs: list[list[dict[str, dict[str, Any]]] | None]


def model_inputs(
    *,
    prompt: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    sampling: dict[str, Any],
    stream: bool,
    echo: bool = False,
    sparse: bool = False,
) -> dict[str, Any]:
    values: dict[str, Any] = {"text_input": prompt} if messages is None else {"messages": messages}
    values.update(
        stream=stream,
        sampling_parameters=sampling,
        # The prompt comes back at the head of a non-streamed answer only for `echo`.
        exclude_input_in_output=not (echo and not stream),
        return_finish_reason=True,
        return_num_input_tokens=True,
        return_num_output_tokens=True,
    )
    if sampling.get("logprobs") is not None:
        values["return_logprobs"] = True
    if sparse and stream:
        # Counts and reasons only where they change: ~20% less CPU per streamed token
        # across stub, Triton and frontend (docs/benchmarks.md).
        values["sparse_outputs"] = True
    return values


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
    return Step(
        texts=texts,
        finish_reasons=reasons,
        num_output_tokens=num_output,
        num_input_tokens=int(num_input.reshape(-1)[0]) if num_input is not None else 0,
        logprobs=logprobs or [None] * len(texts),
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
    """Interleave several step streams (one per prompt) as their steps arrive."""
    if len(streams) == 1:
        async for step in streams[0]:
            yield 0, step
        return
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(i: int, stream: AsyncIterator[Step]) -> None:
        try:
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
