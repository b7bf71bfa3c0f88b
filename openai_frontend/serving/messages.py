"""Anthropic's /v1/messages and /v1/messages/count_tokens served, as vLLM 0.32 serves them
(vllm/entrypoints/anthropic/serving.py): the request becomes a chat request
(`messages_chat`), the chat layer serves it (`serving.chat`, /tokenize for the count), and
its answer becomes Anthropic's message (here) or events (`messages_stream`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from openai_frontend import anthropic_wire
from openai_frontend.backend import ModelInfo, ModelServer
from openai_frontend.endpoints import Endpoint
from openai_frontend.media import MediaSettings
from openai_frontend.schemas.messages import (
    ContextManagement,
    CountTokensRequest,
    CountTokensResponse,
    MessagesRequest,
    MessagesResponse,
    MessagesUsage,
    ResponseBlock,
    message_id,
)
from openai_frontend.serving import chat, messages_stream
from openai_frontend.serving import tokenize as tokenizing
from openai_frontend.serving.messages_chat import chat_request, matched_stop, stop_reason, tokenize_request
from openai_frontend.sse import Framing

# Anthropic's SSE: `event:` lines, an `error` event after a failure, no end marker.
FRAMING = Framing(anthropic_wire.event, anthropic_wire.error_event, b"")


async def response(
    triton: ModelServer, info: ModelInfo, body: MessagesRequest, rid: str, media: MediaSettings | None = None
) -> MessagesResponse:
    """The whole message of a request without `stream`; `media`: what image URLs may reach."""
    answer = await chat.response(triton, info, chat_request(body), rid, Endpoint.MESSAGES, media)
    choice, usage = answer.choices[0], answer.usage
    message = choice.message
    text = message.content or ""
    stop = matched_stop(text, body.stop_sequences) if choice.finish_reason == "stop" else None
    if stop:
        text = text[: -len(stop)]
    blocks = []
    if message.reasoning:  # a signature of our own: nothing checks it, clients only pass it back
        blocks.append(ResponseBlock(type="thinking", thinking=message.reasoning, signature=uuid.uuid4().hex))
    if text:
        blocks.append(ResponseBlock(type="text", text=text))
    for call in message.tool_calls or []:
        arguments = tool_input(call.function.arguments)
        blocks.append(ResponseBlock(type="tool_use", id=call.id, name=call.function.name, input=arguments))
    return MessagesResponse(
        id=message_id(),
        # Anthropic's shape of an empty answer is one empty text block, not none (vLLM's too).
        content=blocks or [ResponseBlock(type="text", text="")],
        model=body.model,
        stop_reason=stop_reason(choice.finish_reason, stop, bool(message.tool_calls)),
        stop_sequence=stop,
        usage=MessagesUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens),
    )


def events(
    triton: ModelServer, info: ModelInfo, body: MessagesRequest, rid: str, media: MediaSettings | None = None
) -> AsyncGenerator[dict, None]:
    """The events of a streamed request (for `sse.stream_response` with Anthropic's framing)."""
    chunks = chat.chunks(triton, info, chat_request(body), rid, Endpoint.MESSAGES, media)
    return messages_stream.events(body, chunks)


async def count_tokens(triton: ModelServer, info: ModelInfo, body: CountTokensRequest, rid: str) -> CountTokensResponse:
    """The prompt's tokens, counted by the model's tokenizer on the prompt /v1/messages renders."""
    counted = await tokenizing.tokenize(triton, info, tokenize_request(body), rid)
    return CountTokensResponse(
        input_tokens=counted.count, context_management=ContextManagement(original_input_tokens=counted.count)
    )


def tool_input(arguments: str) -> dict[str, Any]:
    """A call's arguments as the `input` object (the parsers give JSON; anything else: under `arguments`)."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}
