"""POST /v1/completions: routing, and the response built from the accumulator's choices."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from openai_frontend.backend import Triton, require_model
from openai_frontend.middleware import request_id
from openai_frontend.schemas.completions import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
)
from openai_frontend.serving import tensors
from openai_frontend.serving.accumulate import Accumulator, Positions
from openai_frontend.serving.disconnect import cancel_on_disconnect
from openai_frontend.sse import stream_response

router = APIRouter()


@router.post("/v1/completions", response_model=CompletionResponse, response_model_exclude_none=False)
@cancel_on_disconnect
async def create_completion(body: CompletionRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, "completions")
    sampling = info.with_adapter(body.sampling())  # a LoRA adapter's name: its base model, lora_name
    rid = request_id(request)
    prompts = body.prompts
    # vLLM's rule: with `return_token_ids` an echo is the prompt's ids, not its text.
    echo_text = body.echo and not body.return_token_ids
    values = [
        tensors.model_inputs(
            prompt=p, sampling=sampling, stream=body.stream, echo=echo_text, sparse=info.sparse_outputs,
            return_token_ids=bool(body.return_token_ids),
        )
        for p in prompts
    ]  # fmt: skip
    # Echo with logprobs asks for the prompt's logprobs: a model without them cannot echo them.
    asked_by = {} if body.prompt_logprobs is not None else {"return_prompt_logprobs": "echo"}
    tensors.check_declared(info, values[0], asked_by)
    streams = [
        tensors.steps(triton, info.name, v, "completions", rid if len(prompts) == 1 else f"{rid}-{i}")
        for i, v in enumerate(values)
    ]
    acc = Accumulator(body.n, prompts=len(prompts))
    if body.stream:
        return await stream_response(request, "completions", _chunks(body, acc, tensors.merge(streams), echo_text))

    await acc.add_all(tensors.merge(streams))
    # Not streamed, the model itself puts an echoed prompt at the head of the text.
    choices = []
    for c in acc.choices:
        p = c.index // body.n
        choice = CompletionChoice(index=c.index, text=c.text, finish_reason=c.finish_reason)
        if body.logprobs is not None:
            choice.logprobs = _logprobs(*_with_prompt(body, acc, p, c.logprobs))
        if "prompt_logprobs" in sampling:
            choice.prompt_logprobs = tensors.prompt_logprobs(acc.prompt_logprobs[p])
        if body.return_token_ids:
            choice.prompt_token_ids, choice.token_ids = acc.prompt_token_ids[p], c.token_ids
        choices.append(choice)
    return CompletionResponse(model=body.model, choices=choices, usage=acc.usage())


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


async def _chunks(body: CompletionRequest, acc: Accumulator, steps, echo_text: bool) -> AsyncIterator[dict]:
    # id, object, created and model are the same in every chunk: dump them once.
    base = CompletionResponse(model=body.model, choices=[]).model_dump(exclude={"choices", "usage"})
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
                choice.logprobs = lp = _logprobs(positions, offsets[delta.index])
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


def _logprobs(positions: Positions | None, offset: int = 0) -> CompletionLogprobs:
    out = CompletionLogprobs()
    for position in positions or []:
        token, logprob, candidates = tensors.top_logprobs(position)
        out.tokens.append(token)
        out.token_logprobs.append(logprob)
        # A prompt's first token has no logprob, and no candidates (null, as in OpenAI).
        out.top_logprobs.append(candidates if logprob is not None else None)
        out.text_offset.append(offset)
        offset += len(token)
    return out
