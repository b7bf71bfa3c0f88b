"""POST /v1/chat/completions (serving/chat.py builds the answer; the model applies the chat template)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from openai_frontend.backend import Triton, require_model
from openai_frontend.endpoints import Endpoint
from openai_frontend.media import from_settings
from openai_frontend.middleware import request_id
from openai_frontend.schemas.chat import ChatCompletionRequest, ChatCompletionResponse
from openai_frontend.serving import chat
from openai_frontend.serving.disconnect import cancel_on_disconnect
from openai_frontend.sse import stream_response

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse)
@cancel_on_disconnect
async def create_chat_completion(body: ChatCompletionRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.CHAT)
    media = from_settings(request.app.state.settings)  # what image URLs may reach
    if body.stream:
        chunks = chat.chunks(triton, info, body, request_id(request), media=media)
        return await stream_response(request, Endpoint.CHAT, chunks)
    return await chat.response(triton, info, body, request_id(request), media=media)
