"""POST /v1/chat/completions: routing, and the response built from the accumulator's choices.

The chat template is applied by the model (`messages` input).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from openai_frontend.backend import Triton, require_model
from openai_frontend.middleware import request_id
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
from openai_frontend.serving import tensors
from openai_frontend.serving.accumulate import Accumulator, Positions
from openai_frontend.sse import stream_response

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse)
async def create_chat_completion(body: ChatCompletionRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, "chat")
    messages = [m.for_template() for m in body.messages]
    values = tensors.model_inputs(
        messages=messages, sampling=body.sampling(), stream=body.stream, sparse=info.sparse_outputs
    )
    # The model names `max_tokens`; this client may have called it `max_completion_tokens`.
    sent = {"max_tokens": "max_completion_tokens"} if body.max_completion_tokens is not None else None
    steps = tensors.merge([tensors.steps(triton, body.model, values, "chat", request_id(request), sent)])
    acc = Accumulator(body.n)
    if body.stream:
        return stream_response(request, "chat", _chunks(body, acc, steps))

    await acc.add_all(steps)
    choices = [
        ChatChoice(
            index=c.index,
            message=ChatMessage(content=c.text),
            finish_reason=c.finish_reason,
            logprobs=_logprobs(c.logprobs, body.top_logprobs or 0) if body.logprobs else None,
        )
        for c in acc.choices
    ]
    return ChatCompletionResponse(model=body.model, choices=choices, usage=acc.usage())


async def _chunks(body: ChatCompletionRequest, acc: Accumulator, steps) -> AsyncIterator[dict]:
    chunk = ChatCompletionChunk(id=chat_id(), created=int(time.time()), model=body.model, choices=[])
    base = chunk.model_dump(exclude={"choices", "usage"})
    # OpenAI's first chunk of each choice carries the role and empty content.
    first = [ChatChunkChoice(index=c, delta=DeltaMessage(role="assistant", content="")) for c in range(body.n)]
    yield {**base, "choices": [_dump(c) for c in first]}
    async for _, step in steps:
        choices = [
            ChatChunkChoice(
                index=d.index,
                delta=DeltaMessage(content=d.text),
                finish_reason=d.finish_reason,
                logprobs=_logprobs(d.logprobs, body.top_logprobs or 0) if body.logprobs else None,
            )
            for d in acc.add(0, step)
            if d.text or d.finish_reason
        ]
        if choices:
            yield {**base, "choices": [_dump(c) for c in choices]}
    if body.include_usage:
        yield {**base, "choices": [], "usage": acc.usage().model_dump()}


def _dump(choice: ChatChunkChoice) -> dict:
    # As OpenAI does, a delta carries only what it has (no "role": null after the first).
    return {**choice.model_dump(), "delta": choice.delta.model_dump(exclude_none=True)}


def _logprobs(positions: Positions | None, top: int) -> ChoiceLogprobs:
    content = []
    for position in positions or []:
        token, logprob, candidates = tensors.top_logprobs(position)
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
