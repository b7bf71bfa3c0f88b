"""POST /v1/chat/completions. The chat template is applied by the model (`messages` input)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from openai_frontend.schemas.chat import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    ChoiceLogprobs,
    DeltaMessage,
    TokenLogprob,
    TopLogprob,
    chat_id,
)
from openai_frontend.schemas.common import Usage, finish_reason
from openai_frontend.serving import tensors as generation
from openai_frontend.sse import stream_response

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse)
async def create_chat_completion(body: ChatCompletionRequest, request: Request):
    client = request.app.state.triton
    info = await client.require_model(body.model, "chat")
    messages = [m.for_template() for m in body.messages]
    values = generation.model_inputs(
        messages=messages, sampling=body.sampling(), stream=body.stream, sparse=info.sparse_outputs
    )
    steps = generation.steps(client, body.model, values)
    if body.stream:
        return stream_response(request, "chat", _chunks(body, steps))

    texts = [""] * body.n
    reasons: list[str | None] = [None] * body.n
    logprobs: list[ChoiceLogprobs | None] = [None] * body.n
    prompt_tokens = completion_tokens = 0
    async for step in steps:
        prompt_tokens = step.num_input_tokens
        for c, text in enumerate(step.texts):
            texts[c] += text
            reasons[c] = step.finish_reasons[c] or reasons[c]
            completion_tokens += step.num_output_tokens[c]
            if body.logprobs:
                logprobs[c] = _logprobs(step.logprobs[c], body.top_logprobs or 0)
    choices = [
        ChatChoice(
            index=c,
            message=ChatMessage(content=texts[c]),
            finish_reason=finish_reason(reasons[c]),
            logprobs=logprobs[c],
        )
        for c in range(body.n)
    ]
    usage = Usage.of(prompt_tokens, completion_tokens)
    return ChatCompletionResponse(model=body.model, choices=choices, usage=usage)


async def _chunks(body: ChatCompletionRequest, steps) -> AsyncIterator[dict]:
    chunk = ChatCompletionChunk(id=chat_id(), created=int(time.time()), model=body.model, choices=[])
    base = chunk.model_dump(exclude={"choices", "usage"})
    # OpenAI's first chunk of each choice carries the role and empty content.
    first = [ChatChunkChoice(index=c, delta=DeltaMessage(role="assistant", content="")) for c in range(body.n)]
    yield {**base, "choices": [_dump(c) for c in first]}
    prompt_tokens = completion_tokens = 0
    async for step in steps:
        prompt_tokens = step.num_input_tokens or prompt_tokens  # (sparse outputs: first response only)
        choices = []
        for c, text in enumerate(step.texts):
            completion_tokens += step.num_output_tokens[c]
            reason = finish_reason(step.finish_reasons[c])
            if text or reason:
                lp = _logprobs(step.logprobs[c], body.top_logprobs or 0) if body.logprobs else None
                choices.append(
                    ChatChunkChoice(index=c, delta=DeltaMessage(content=text), finish_reason=reason, logprobs=lp)
                )
        if choices:
            yield {**base, "choices": [_dump(c) for c in choices]}
    if body.include_usage:
        usage = Usage.of(prompt_tokens, completion_tokens)
        yield {**base, "choices": [], "usage": usage.model_dump()}


def _dump(choice: ChatChunkChoice) -> dict:
    # As OpenAI does, a delta carries only what it has (no "role": null after the first).
    return {**choice.model_dump(), "delta": choice.delta.model_dump(exclude_none=True)}


def _logprobs(steps, top: int) -> ChoiceLogprobs:
    content = []
    for position in steps or []:
        token, logprob, candidates = generation.top_logprobs(position)
        ranked = sorted(candidates.items(), key=lambda kv: -kv[1])[:top]
        content.append(
            TokenLogprob(
                token=token,
                logprob=logprob,
                bytes=list(token.encode()),
                top_logprobs=[TopLogprob(token=t, logprob=lp, bytes=list(t.encode())) for t, lp in ranked],
            )
        )
    return ChoiceLogprobs(content=content)
