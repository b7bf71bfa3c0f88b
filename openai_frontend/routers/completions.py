"""POST /v1/completions (serving/completions.py builds the answer)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from openai_frontend.backend import Triton, require_model
from openai_frontend.endpoints import Endpoint
from openai_frontend.middleware import request_id
from openai_frontend.schemas.completions import CompletionRequest, CompletionResponse
from openai_frontend.serving import completions
from openai_frontend.serving.disconnect import cancel_on_disconnect
from openai_frontend.sse import stream_response

router = APIRouter()


@router.post("/v1/completions", response_model=CompletionResponse, response_model_exclude_none=False)
@cancel_on_disconnect
async def create_completion(body: CompletionRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.COMPLETIONS)
    if body.stream:
        chunks = completions.chunks(triton, info, body, request_id(request))
        return await stream_response(request, Endpoint.COMPLETIONS, chunks)
    return await completions.response(triton, info, body, request_id(request))
