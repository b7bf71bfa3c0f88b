"""POST /v1/embeddings."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from openai_frontend.backend import Outputs, Triton, require_model
from openai_frontend.errors import InvalidField
from openai_frontend.middleware import request_id
from openai_frontend.schemas.embeddings import EmbeddingRequest, EmbeddingResponse
from openai_frontend.serving.disconnect import cancel_on_disconnect
from openai_frontend.serving.fields import for_endpoint
from openai_frontend.serving.pieces import in_pieces

router = APIRouter()


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
@cancel_on_disconnect
async def create_embeddings(body: EmbeddingRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, "embeddings")
    texts = body.texts
    parameters = body.model_dump(include={"dimensions", "truncate_prompt_tokens"}, exclude_none=True)

    async def piece(rows: slice, piece_id: str) -> Outputs:
        try:
            return await triton.embed(body.model, texts[rows], parameters, piece_id)
        except InvalidField as exc:
            # The model numbers the texts of this piece; the client's are `input[offset + i]`.
            raise for_endpoint(exc, "embeddings", rows.start) from None

    outputs = await in_pieces(len(texts), info.max_batch_size, request_id(request), piece)
    vectors = outputs["embedding"]
    prompt_tokens = int(outputs["num_input_tokens"].sum())
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
