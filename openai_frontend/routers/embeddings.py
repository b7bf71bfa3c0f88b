"""POST /v1/embeddings."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from openai_frontend.backend import ModelServer, Outputs, Triton, require_model
from openai_frontend.errors import InvalidField
from openai_frontend.middleware import request_id
from openai_frontend.schemas.embeddings import EmbeddingRequest, EmbeddingResponse
from openai_frontend.serving.disconnect import cancel_on_disconnect
from openai_frontend.serving.fields import for_endpoint

router = APIRouter()


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
@cancel_on_disconnect
async def create_embeddings(body: EmbeddingRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, "embeddings")
    texts = body.texts
    parameters = body.model_dump(include={"dimensions", "truncate_prompt_tokens"}, exclude_none=True)
    # A request may hold up to max_batch_size texts; Triton batches the pieces together again.
    size = max(info.max_batch_size, 1)
    starts = range(0, len(texts), size)
    rid = request_id(request)
    ids = [rid] if len(starts) == 1 else [f"{rid}-{i}" for i in range(len(starts))]
    pieces = [
        asyncio.ensure_future(_embed(triton, body.model, texts[s : s + size], parameters, s, i))
        for s, i in zip(starts, ids, strict=True)
    ]
    try:
        results = await asyncio.gather(*pieces)
    finally:  # one piece refused (a full queue's 429, a text's 400): the others' work is not wanted
        for piece in pieces:
            piece.cancel()
    vectors = np.concatenate([r["embedding"] for r in results])
    prompt_tokens = int(sum(r["num_input_tokens"].sum() for r in results))
    if body.encoding_format == "base64":
        encoded = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
    else:
        encoded = vectors.tolist()
    # Built as plain data: a pydantic pass over thousands of floats costs more than the JSON.
    return JSONResponse(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)],
            "model": body.model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )


async def _embed(
    client: ModelServer, model: str, texts: list[str], parameters: dict, offset: int, request_id: str
) -> Outputs:
    try:
        return await client.embed(model, texts, parameters, request_id)
    except InvalidField as exc:
        # The model numbers the texts of this piece; the client's are `input[offset + i]`.
        raise for_endpoint(exc, "embeddings", offset) from None
