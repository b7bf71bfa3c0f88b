"""POST /tokenize and /detokenize, vLLM's (served at its root, here under the route prefix like
every other route; serving/tokenize.py asks the model, whose tokenizer answers)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from openai_frontend.backend import Triton, only_model, require_model
from openai_frontend.endpoints import Endpoint
from openai_frontend.middleware import request_id
from openai_frontend.schemas.tokenize import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from openai_frontend.serving import tokenize as tokenizing

router = APIRouter()


@router.post("/tokenize", response_model=TokenizeResponse)
async def tokenize(body: TokenizeRequest, request: Request, triton: Triton):
    info = await require_model(triton, await only_model(triton, body.model), tokenizing.endpoint(body))
    return await tokenizing.tokenize(triton, info, body, request_id(request))


@router.post("/detokenize", response_model=DetokenizeResponse)
async def detokenize(body: DetokenizeRequest, request: Request, triton: Triton):
    info = await require_model(triton, await only_model(triton, body.model), Endpoint.DETOKENIZE)
    return await tokenizing.detokenize(triton, info, body, request_id(request))
