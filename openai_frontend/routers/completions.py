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
from openai_frontend.sse import stream_response

router = APIRouter()


@router.post("/v1/completions", response_model=CompletionResponse, response_model_exclude_none=False)
async def create_completion(body: CompletionRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, "completions")
    sampling = body.sampling()
    rid = request_id(request)
    streams = [
        tensors.steps(triton, body.model, tensors.model_inputs(
            prompt=p, sampling=sampling, stream=body.stream, echo=body.echo, sparse=info.sparse_outputs
        ), "completions", rid if len(body.prompts) == 1 else f"{rid}-{i}")
        for i, p in enumerate(body.prompts)
    ]  # fmt: skip
    acc = Accumulator(body.n, prompts=len(body.prompts))
    if body.stream:
        return stream_response(request, "completions", _chunks(body, acc, tensors.merge(streams)))

    await acc.add_all(tensors.merge(streams))
    # Not streamed, the model itself puts an echoed prompt at the head of the text.
    choices = [
        CompletionChoice(
            index=c.index,
            text=c.text,
            finish_reason=c.finish_reason,
            logprobs=_logprobs(c.logprobs, body.prompts[c.index // body.n] if body.echo else "")
            if body.logprobs is not None
            else None,
        )
        for c in acc.choices
    ]
    return CompletionResponse(model=body.model, choices=choices, usage=acc.usage())


async def _chunks(body: CompletionRequest, acc: Accumulator, steps) -> AsyncIterator[dict]:
    # id, object, created and model are the same in every chunk: dump them once.
    base = CompletionResponse(model=body.model, choices=[]).model_dump(exclude={"choices", "usage"})
    echoed: set[int] = set()
    # text_offset counts from the start of the choice's whole text, across chunks (as OpenAI's).
    offsets = [len(body.prompts[i // body.n]) if body.echo else 0 for i in range(len(acc.choices))]
    async for p, step in steps:
        choices = []
        for delta in acc.add(p, step):
            text = delta.text
            if body.echo and delta.index not in echoed:  # streamed, the prompt is ours to echo
                text = body.prompts[p] + text
            echoed.add(delta.index)
            lp = None
            if body.logprobs is not None:
                lp = _logprobs(delta.logprobs, offset=offsets[delta.index])
                offsets[delta.index] += sum(len(t) for t in lp.tokens)
            if text or delta.finish_reason or (lp and lp.tokens):
                choices.append(
                    CompletionChoice(index=delta.index, text=text, finish_reason=delta.finish_reason, logprobs=lp)
                )
        if choices:
            yield {**base, "choices": [c.model_dump() for c in choices]}
    if body.include_usage:
        yield {**base, "choices": [], "usage": acc.usage().model_dump()}


def _logprobs(positions: Positions | None, prefix: str = "", offset: int = 0) -> CompletionLogprobs:
    out = CompletionLogprobs()
    offset += len(prefix)
    for position in positions or []:
        token, logprob, candidates = tensors.top_logprobs(position)
        out.tokens.append(token)
        out.token_logprobs.append(logprob)
        out.top_logprobs.append(candidates)
        out.text_offset.append(offset)
        offset += len(token)
    return out
