"""Completions served: one model request per prompt (their steps merged as they arrive), the
accumulator's choices, and OpenAI's response or chunks, echo and logprobs included. The
router only resolves the model and picks `response` or `chunks`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from openai_frontend.backend import ModelInfo, ModelServer
from openai_frontend.endpoints import Endpoint
from openai_frontend.schemas.completions import CompletionChoice, CompletionRequest, CompletionResponse
from openai_frontend.serving import logprobs, tensors
from openai_frontend.serving.accumulate import Accumulator
from openai_frontend.serving.logprobs import Positions
from openai_frontend.serving.tensors import Step


async def response(triton: ModelServer, info: ModelInfo, body: CompletionRequest, rid: str) -> CompletionResponse:
    """The whole answer of a request without `stream`."""
    sampling = info.with_adapter(body.sampling())  # a LoRA adapter's name: its base model, lora_name
    acc = Accumulator(body.n, prompts=len(body.prompts))
    await acc.add_all(_steps(triton, info, body, sampling, rid))
    # Not streamed, the model itself puts an echoed prompt at the head of the text.
    choices = []
    for c in acc.choices:
        p = c.index // body.n
        choice = CompletionChoice(index=c.index, text=c.text, finish_reason=c.finish_reason)
        if body.logprobs is not None:
            choice.logprobs = logprobs.for_completion(*_with_prompt(body, acc, p, c.logprobs))
        if "prompt_logprobs" in sampling:
            choice.prompt_logprobs = logprobs.prompt_logprobs(acc.prompt_logprobs[p])
        if body.return_token_ids:
            choice.prompt_token_ids, choice.token_ids = acc.prompt_token_ids[p], c.token_ids
        choices.append(choice)
    return CompletionResponse(model=body.model, choices=choices, usage=acc.usage())


def chunks(triton: ModelServer, info: ModelInfo, body: CompletionRequest, rid: str) -> AsyncGenerator[dict, None]:
    """The chunks of a streamed request (for `sse.stream_response`); a field the model does not
    declare is refused here, before the stream begins."""
    steps = _steps(triton, info, body, info.with_adapter(body.sampling()), rid)
    return _chunks(body, Accumulator(body.n, prompts=len(body.prompts)), steps)


def _echo_text(body: CompletionRequest) -> bool:
    # vLLM's rule: with `return_token_ids` an echo is the prompt's ids, not its text.
    return bool(body.echo and not body.return_token_ids)


def _steps(
    triton: ModelServer, info: ModelInfo, body: CompletionRequest, sampling: dict[str, Any], rid: str
) -> AsyncIterator[tuple[int, Step]]:
    """One model request per prompt, sent once their inputs are known to be declared."""
    prompts = body.prompts
    values = [
        tensors.model_inputs(
            prompt=p, sampling=sampling, stream=body.stream, echo=_echo_text(body), sparse=info.sparse_outputs,
            return_token_ids=bool(body.return_token_ids),
        )
        for p in prompts
    ]  # fmt: skip
    # Echo with logprobs asks for the prompt's logprobs: a model without them cannot echo them.
    asked_by = {} if body.prompt_logprobs is not None else {"return_prompt_logprobs": "echo"}
    tensors.check_declared(info, values[0], asked_by)
    streams = [
        tensors.steps(triton, info.name, v, Endpoint.COMPLETIONS, rid if len(prompts) == 1 else f"{rid}-{i}")
        for i, v in enumerate(values)
    ]
    return tensors.merge(streams)


def _with_prompt(body: CompletionRequest, acc: Accumulator, p: int, positions: Positions | None) -> tuple:
    """An echo's logprobs start with the prompt's tokens (the first without a logprob), as in
    OpenAI and vLLM: (positions, the text offset of the first)."""
    if not body.echo:
        return positions, 0
    prompt = acc.prompt_logprobs[p]
    if prompt is None:  # a model that sent none: the completion's, after the echoed text
        text = body.prompts[p]
        return positions, len(text) if isinstance(text, str) else 0
    return [*prompt, *(positions or [])], 0


async def _chunks(
    body: CompletionRequest, acc: Accumulator, steps: AsyncIterator[tuple[int, Step]]
) -> AsyncGenerator[dict, None]:
    # id, object, created and model are the same in every chunk: dump them once.
    base = CompletionResponse(model=body.model, choices=[]).model_dump(exclude={"choices", "usage"})
    echo_text = _echo_text(body)
    started: set[int] = set()
    # text_offset counts from the start of the choice's whole text, across chunks (as OpenAI's).
    offsets = [0] * len(acc.choices)
    async for p, step in steps:
        choices = []
        for delta in acc.add(p, step):
            text, positions, first = delta.text, delta.logprobs, delta.index not in started
            started.add(delta.index)
            if first and echo_text and isinstance(body.prompts[p], str):
                text = body.prompts[p] + text  # a text prompt is ours to echo; ids the model echoes
            choice = CompletionChoice(index=delta.index, text=text, finish_reason=delta.finish_reason)
            if body.logprobs is not None:
                if first:
                    positions, offsets[delta.index] = _with_prompt(body, acc, p, positions)
                choice.logprobs = lp = logprobs.for_completion(positions, offsets[delta.index])
                offsets[delta.index] += sum(len(t) for t in lp.tokens)
            if body.return_token_ids:
                choice.token_ids = delta.token_ids or []
                if first:
                    choice.prompt_token_ids = acc.prompt_token_ids[p]
            if text or delta.finish_reason or (choice.logprobs and choice.logprobs.tokens) or choice.token_ids:
                choices.append(choice)
        if body.continuous_usage:  # vLLM's: one choice per chunk, each with its usage so far
            for c in choices:
                yield {**base, "choices": [c.model_dump()], "usage": acc.choice_usage(c.index).model_dump()}
        elif choices:
            yield {**base, "choices": [c.model_dump() for c in choices]}
    if body.include_usage:
        yield {**base, "choices": [], "usage": acc.usage().model_dump()}
