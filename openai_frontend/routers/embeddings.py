"""POST /v1/embeddings (serving/embeddings.py builds the answer)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from openai_frontend.backend import Triton, require_model
from openai_frontend.endpoints import Endpoint
from openai_frontend.middleware import request_id
from openai_frontend.schemas.embeddings import EmbeddingRequest, EmbeddingResponse
from openai_frontend.serving import embeddings
from openai_frontend.serving.disconnect import cancel_on_disconnect

router = APIRouter()


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
@cancel_on_disconnect
async def create_embeddings(body: EmbeddingRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.EMBEDDINGS)
    return await embeddings.response(triton, info, body, request_id(request))
