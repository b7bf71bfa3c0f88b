"""POST /v1/messages and /v1/messages/count_tokens, Anthropic's Messages API (serving/messages.py
serves it on the chat layer; anthropic_wire.py gives its errors and events Anthropic's shapes)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from openai_frontend.backend import Triton, require_model
from openai_frontend.endpoints import Endpoint
from openai_frontend.media import from_settings
from openai_frontend.middleware import request_id
from openai_frontend.schemas.messages import CountTokensRequest, CountTokensResponse, MessagesRequest, MessagesResponse
from openai_frontend.serving import messages
from openai_frontend.serving.disconnect import cancel_on_disconnect
from openai_frontend.sse import stream_response

router = APIRouter()


@router.post("/v1/messages", response_model=MessagesResponse)
@cancel_on_disconnect
async def create_message(body: MessagesRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.MESSAGES)
    media = from_settings(request.app.state.settings)  # what image URLs may reach
    if body.stream:
        chunks = messages.events(triton, info, body, request_id(request), media)
        return await stream_response(request, Endpoint.MESSAGES, chunks, messages.FRAMING)
    return await messages.response(triton, info, body, request_id(request), media)


@router.post("/v1/messages/count_tokens", response_model=CountTokensResponse)
@cancel_on_disconnect
async def count_tokens(body: CountTokensRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.MESSAGES)
    return await messages.count_tokens(triton, info, body, request_id(request))
