"""POST /classify (/v1/classify) and /pooling (/v1/pooling), as vLLM serves them
(serving/pooling.py runs the encoder model and builds the answers)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from openai_frontend.backend import Triton, require_model
from openai_frontend.endpoints import Endpoint
from openai_frontend.middleware import request_id
from openai_frontend.schemas.pooling import ClassificationResponse, ClassifyRequest, PoolingRequest, PoolingResponse
from openai_frontend.serving import pooling
from openai_frontend.serving.disconnect import cancel_on_disconnect

router = APIRouter()


@router.post("/classify", response_model=ClassificationResponse)
@router.post("/v1/classify", response_model=ClassificationResponse)
@cancel_on_disconnect
async def classify(body: ClassifyRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.CLASSIFY)
    return await pooling.classify(triton, info, body, request_id(request))


@router.post("/pooling", response_model=PoolingResponse)
@router.post("/v1/pooling", response_model=PoolingResponse)
@cancel_on_disconnect
async def pool(body: PoolingRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.POOLING)
    return await pooling.pool(triton, info, body, request_id(request))
