"""Chat completions served: the request as the model's tensors (`messages`: the model applies
its chat template), its steps gathered by the accumulator, and OpenAI's response or chunks
built from the choices. The router only resolves the model and picks `response` or `chunks`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from openai_frontend.backend import ModelInfo, ModelServer
from openai_frontend.endpoints import Endpoint
from openai_frontend.media import MediaSettings
from openai_frontend.schemas.chat import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    DeltaMessage,
    chat_id,
)
from openai_frontend.schemas.common import Usage
from openai_frontend.serving import content, logprobs, tensors
from openai_frontend.serving.accumulate import Accumulator, Choice, Delta
from openai_frontend.serving.tensors import Step


async def response(
    triton: ModelServer,
    info: ModelInfo,
    body: ChatCompletionRequest,
    rid: str,
    endpoint: Endpoint = Endpoint.CHAT,
    media: MediaSettings | None = None,
) -> ChatCompletionResponse:
    """The whole answer of a request without `stream`; `endpoint`: the API the client speaks
    (/v1/messages is served as a chat), which a refused field is named for; `media`: what image URLs
    may reach (media.py; None: data: URLs only)."""
    sampling = info.with_adapter(body.sampling())  # a LoRA adapter's name: its base model, lora_name
    acc = Accumulator(body.n)
    await acc.add_all(_steps(triton, info, body, sampling, rid, endpoint, media))
    choices = [
        ChatChoice(
            index=c.index,
            message=_message(c),
            finish_reason=c.finish_reason,
            logprobs=logprobs.for_chat(c.logprobs, body.top_logprobs or 0) if body.logprobs else None,
            token_ids=c.token_ids if body.return_token_ids else None,
        )
        for c in acc.choices
    ]
    answer = ChatCompletionResponse(model=body.model, choices=choices, usage=acc.usage())
    if "prompt_logprobs" in sampling:  # vLLM puts them on the response, not on a choice
        answer.prompt_logprobs = logprobs.prompt_logprobs(acc.prompt_logprobs[0])
    if body.return_token_ids:
        answer.prompt_token_ids = acc.prompt_token_ids[0]
    return answer


def chunks(
    triton: ModelServer,
    info: ModelInfo,
    body: ChatCompletionRequest,
    rid: str,
    endpoint: Endpoint = Endpoint.CHAT,
    media: MediaSettings | None = None,
) -> AsyncGenerator[dict, None]:
    """The chunks of a streamed request (for `sse.stream_response`); a field the model does not
    declare is refused here, before the stream begins (a bad image: before the first chunk)."""
    steps = _steps(triton, info, body, info.with_adapter(body.sampling()), rid, endpoint, media)
    return _chunks(body, Accumulator(body.n), steps)


def _steps(
    triton: ModelServer,
    info: ModelInfo,
    body: ChatCompletionRequest,
    sampling: dict[str, Any],
    rid: str,
    endpoint: Endpoint = Endpoint.CHAT,
    media: MediaSettings | None = None,
) -> AsyncIterator[tuple[int, Step]]:
    """The request sent to the model, once its inputs are known to be declared."""
    messages = [m.for_template() for m in body.messages]
    values = tensors.model_inputs(
        messages=messages, sampling=sampling, stream=body.stream, sparse=info.sparse_outputs,
        chat_template_kwargs=body.template_kwargs(), tool_inputs=body.tool_inputs(),
        return_token_ids=bool(body.return_token_ids),
    )  # fmt: skip
    # Template variables sent only for vLLM's own fields: the 400 of a model without them names one.
    asked_by = {} if body.chat_template_kwargs is not None else {"chat_template_kwargs": _template_field(body)}
    tensors.check_declared(info, values, asked_by)
    # The model names `max_tokens`; this client may have called it `max_completion_tokens`. Its
    # `structured_outputs` is the client's own unless response_format gave it.
    sent = {"max_tokens": "max_completion_tokens"} if body.max_completion_tokens is not None else {}
    if body.structured_outputs is not None:
        sent["structured_outputs"] = "structured_outputs"
    steps = tensors.merge([tensors.steps(triton, info.name, values, endpoint, rid, sent)])
    parts = content.media_parts(body.messages)
    return _with_media(values, parts, info, media, steps) if parts else steps


async def _with_media(
    values: dict[str, Any], parts: list, info: ModelInfo, media: MediaSettings | None, steps: AsyncIterator
) -> AsyncIterator[tuple[int, Step]]:
    """`steps` once the images are fetched and checked (their tensor added to `values`, which the model
    request reads when first iterated); a model's refusal of an image names its part."""
    values.update(await content.media_inputs(parts, info, media))
    async for item in content.renamed(steps, parts):
        yield item


async def _chunks(
    body: ChatCompletionRequest, acc: Accumulator, steps: AsyncIterator[tuple[int, Step]]
) -> AsyncGenerator[dict, None]:
    chunk = ChatCompletionChunk(id=chat_id(), created=int(time.time()), model=body.model, choices=[])
    base = chunk.model_dump(exclude={"choices", "usage"})
    # OpenAI's first chunk of each choice carries the role and empty content.
    first = [ChatChunkChoice(index=c, delta=DeltaMessage(role="assistant", content="")) for c in range(body.n)]
    # The role chunks wait for the model's first response, as in vLLM: a refusal is then the
    # response's status (sse.py), and the time to first token is the model's.
    roles_sent = False
    async for _, step in steps:
        deltas = acc.add(0, step)
        if not roles_sent and not (body.return_token_ids or body.continuous_usage):
            roles_sent = True
            yield {**base, "choices": [_dump(c) for c in first]}
        if not roles_sent:  # they carry what the first response brings: one chunk per choice, as vLLM's
            roles_sent = True
            extra: dict = {"prompt_token_ids": acc.prompt_token_ids[0]} if body.return_token_ids else {}
            if body.continuous_usage:
                extra["usage"] = Usage.of(acc.prompt_tokens, 0).model_dump()
            for c in first:
                yield {**base, "choices": [_dump(c)], **extra}
        choices = [
            ChatChunkChoice(
                index=d.index,
                delta=_delta(d),
                finish_reason=d.finish_reason,
                logprobs=logprobs.for_chat(d.logprobs, body.top_logprobs or 0) if body.logprobs else None,
                token_ids=(d.token_ids or []) if body.return_token_ids else None,
            )
            for d in deltas
            if d.text or d.finish_reason or d.tool_calls or d.reasoning or (body.return_token_ids and d.token_ids)
        ]
        if body.continuous_usage:  # vLLM's: one choice per chunk, each with its usage so far
            for c in choices:
                yield {**base, "choices": [_dump(c)], "usage": acc.choice_usage(c.index).model_dump()}
        elif choices:
            yield {**base, "choices": [_dump(c) for c in choices]}
    if body.include_usage:
        yield {**base, "choices": [], "usage": acc.usage().model_dump()}


def _template_field(body: ChatCompletionRequest) -> str:
    return "continue_final_message" if body.continue_final_message else "add_generation_prompt"


def _message(choice: Choice) -> ChatMessage:
    # Content is null when the parsers left no text of an answer that called tools or reasoned (vLLM).
    calls, reasoning = choice.tool_calls or None, choice.reasoning or None
    content = choice.text if choice.text or not (calls or reasoning) else None
    return ChatMessage(content=content, tool_calls=calls, reasoning_content=reasoning, reasoning=reasoning)


def _delta(delta: Delta) -> DeltaMessage:
    # With the parsers at work a step may bring only calls or reasoning: content only when
    # there is some. Without them, every choice's chunk has content, as before.
    content = delta.text if delta.text or not delta.parsed else None
    reasoning = delta.reasoning or None
    return DeltaMessage(
        content=content, tool_calls=delta.tool_calls or None, reasoning_content=reasoning, reasoning=reasoning
    )


def _dump(choice: ChatChunkChoice) -> dict:
    # As OpenAI does, a delta carries only what it has (no "role": null after the first).
    return {**choice.model_dump(), "delta": choice.delta.model_dump(exclude_none=True)}
