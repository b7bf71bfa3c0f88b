"""POST /v1/completions."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from openai_frontend.schemas.common import Usage, finish_reason
from openai_frontend.schemas.completions import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
)
from openai_frontend.serving import tensors as generation
from openai_frontend.sse import stream_response

router = APIRouter()


@router.post("/v1/completions", response_model=CompletionResponse, response_model_exclude_none=False)
async def create_completion(body: CompletionRequest, request: Request):
    client = request.app.state.triton
    info = await client.require_model(body.model)
    sampling = body.sampling()
    streams = [
        generation.steps(client, body.model, generation.model_inputs(
            prompt=p, sampling=sampling, stream=body.stream, echo=body.echo, sparse=info.sparse_outputs
        ))
        for p in body.prompts
    ]  # fmt: skip
    if body.stream:
        return stream_response(request, "completions", _chunks(body, streams))

    texts = [""] * (len(body.prompts) * body.n)
    reasons: list[str | None] = [None] * len(texts)
    logprobs: list[CompletionLogprobs | None] = [None] * len(texts)
    prompt_tokens = completion_tokens = 0
    async for p, step in generation.merge(streams):
        prompt_tokens += step.num_input_tokens
        for c, text in enumerate(step.texts):
            i = p * body.n + c
            texts[i] += text
            reasons[i] = step.finish_reasons[c] or reasons[i]
            completion_tokens += step.num_output_tokens[c]
            if body.logprobs is not None:
                logprobs[i] = _logprobs(step.logprobs[c], prefix=body.prompts[p] if body.echo else "")
    choices = [
        CompletionChoice(index=i, text=t, finish_reason=finish_reason(r), logprobs=lp)
        for i, (t, r, lp) in enumerate(zip(texts, reasons, logprobs, strict=True))
    ]
    usage = Usage.of(prompt_tokens, completion_tokens)
    return CompletionResponse(model=body.model, choices=choices, usage=usage)


async def _chunks(body: CompletionRequest, streams) -> AsyncIterator[dict]:
    # id, object, created and model are the same in every chunk: dump them once.
    base = CompletionResponse(model=body.model, choices=[]).model_dump(exclude={"choices", "usage"})
    prompt_tokens = completion_tokens = 0
    counted, echoed = set(), set()
    async for p, step in generation.merge(streams):
        if p not in counted:  # every response repeats its prompt's count
            counted.add(p)
            prompt_tokens += step.num_input_tokens
        choices = []
        for c, text in enumerate(step.texts):
            i = p * body.n + c
            if body.echo and i not in echoed:
                text = body.prompts[p] + text
            echoed.add(i)
            completion_tokens += step.num_output_tokens[c]
            reason = finish_reason(step.finish_reasons[c])
            if text or reason:
                lp = _logprobs(step.logprobs[c]) if body.logprobs is not None else None
                choices.append(CompletionChoice(index=i, text=text, finish_reason=reason, logprobs=lp))
        if choices:
            yield {**base, "choices": [c.model_dump() for c in choices]}
    if body.include_usage:
        usage = Usage.of(prompt_tokens, completion_tokens)
        yield {**base, "choices": [], "usage": usage.model_dump()}


def _logprobs(steps, prefix: str = "") -> CompletionLogprobs:
    out = CompletionLogprobs()
    offset = len(prefix)
    for position in steps or []:
        token, logprob, candidates = generation.top_logprobs(position)
        out.tokens.append(token)
        out.token_logprobs.append(logprob)
        out.top_logprobs.append(candidates)
        out.text_offset.append(offset)
        offset += len(token)
    return out
