"""Embeddings served: the texts to the model in pieces of its `max_batch_size` (`serving.pieces`),
the vectors as floats or base64, and exact usage (the model counts the tokens). The router
only resolves the model and makes one call here.
"""

from __future__ import annotations

import base64

from fastapi.responses import JSONResponse

from openai_frontend.backend import ModelInfo, ModelServer, Outputs
from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import InvalidField
from openai_frontend.schemas.embeddings import EmbeddingRequest
from openai_frontend.serving.fields import for_endpoint
from openai_frontend.serving.pieces import in_pieces


async def response(triton: ModelServer, info: ModelInfo, body: EmbeddingRequest, rid: str) -> JSONResponse:
    texts = body.texts
    parameters = body.model_dump(include={"dimensions", "truncate_prompt_tokens"}, exclude_none=True)

    async def piece(rows: slice, piece_id: str) -> Outputs:
        try:
            return await triton.embed(info.name, texts[rows], parameters, piece_id)
        except InvalidField as exc:
            # The model numbers the texts of this piece; the client's are `input[offset + i]`.
            raise for_endpoint(exc, Endpoint.EMBEDDINGS, rows.start) from None

    outputs = await in_pieces(len(texts), info.max_batch_size, rid, piece)
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
