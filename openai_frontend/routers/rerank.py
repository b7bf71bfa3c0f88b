"""POST /v1/rerank (/rerank, /v2/rerank) and /v1/score (/score), as vLLM serves them
(serving/scoring.py scores the pairs and builds the answers)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from openai_frontend.backend import Triton, require_model
from openai_frontend.endpoints import Endpoint
from openai_frontend.middleware import request_id
from openai_frontend.schemas.rerank import RerankRequest, RerankResponse, ScoreRequest, ScoreResponse
from openai_frontend.serving import scoring
from openai_frontend.serving.disconnect import cancel_on_disconnect

router = APIRouter()


@router.post("/v1/rerank", response_model=RerankResponse)
@router.post("/rerank", response_model=RerankResponse)
@router.post("/v2/rerank", response_model=RerankResponse)
@cancel_on_disconnect
async def rerank(body: RerankRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.SCORE)
    return await scoring.rerank(triton, info, body, request_id(request))


@router.post("/v1/score", response_model=ScoreResponse)
@router.post("/score", response_model=ScoreResponse)
@cancel_on_disconnect
async def score(body: ScoreRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.SCORE)
    return await scoring.score(triton, info, body, request_id(request))
