"""POST /v1/rerank (/rerank, /v2/rerank) and /v1/score (/score), as vLLM serves them.

Two kinds of model score a pair of texts, as in vLLM (vllm/entrypoints/pooling/scoring/):
  - a cross-encoder (task `cross_encoder`: `text_pair` in, `score` out) runs each pair as one
    row, `[CLS] text_1 [SEP] text_2 [SEP]`, and returns its activated logit;
  - an embedding model embeds every text once (the query once, not once per document) and
    the score is the cosine similarity of the two embeddings, computed here.
Rows go to the model in pieces of its `max_batch_size` (`serving.pieces`).
Usage counts what the model ran: every pair's tokens, or every text's once (vLLM's count).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from openai_frontend.backend import ModelInfo, ModelServer, Outputs, Triton, require_model
from openai_frontend.errors import BadRequest, InvalidField
from openai_frontend.middleware import request_id
from openai_frontend.schemas.rerank import RerankRequest, RerankResponse, ScoreRequest, ScoreResponse, ScoringFields
from openai_frontend.serving.disconnect import cancel_on_disconnect
from openai_frontend.serving.pieces import in_pieces

router = APIRouter()


@dataclass
class Sides:
    """The two lists of a request and the names the client gave them (for its errors)."""

    texts_1: list[str]
    texts_2: list[str]
    name_1: str
    name_2: str
    listed_1: bool = True  # sent as a list: its errors name an index
    listed_2: bool = True

    def name(self, row: int, second: bool) -> str:
        """The request field of text `row` of one side."""
        name, listed = (self.name_2, self.listed_2) if second else (self.name_1, self.listed_1)
        return f"{name}[{row}]" if listed else name


@router.post("/v1/rerank", response_model=RerankResponse)
@router.post("/rerank", response_model=RerankResponse)
@router.post("/v2/rerank", response_model=RerankResponse)
@cancel_on_disconnect
async def rerank(body: RerankRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, "score")
    documents = body.document_texts
    sides = Sides([body.query], documents, "query", "documents", False, not isinstance(body.documents, str))
    scores, tokens = await _scores(triton, info, body, sides, request_id(request))
    # Highest first; equal scores keep the documents' order (vLLM's stable sort).
    order = sorted(range(len(documents)), key=lambda i: scores[i], reverse=True)
    results = []
    for i in order[: body.top_n or len(documents)]:
        result: dict = {"index": i}
        if body.return_documents:
            result["document"] = {"text": documents[i], "multi_modal": None}
        result["relevance_score"] = float(scores[i])
        results.append(result)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse({"id": f"score-{request_id(request)}", "model": body.model, "usage": usage, "results": results})


@router.post("/v1/score", response_model=ScoreResponse)
@router.post("/score", response_model=ScoreResponse)
@cancel_on_disconnect
async def score(body: ScoreRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, "score")
    name_1, name_2 = body.names
    listed_1, listed_2 = (not isinstance(getattr(body, n), str) for n in body.names)
    sides = Sides(body.texts_1, body.texts_2, name_1, name_2, listed_1, listed_2)
    scores, tokens = await _scores(triton, info, body, sides, request_id(request))
    usage = {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0, "prompt_tokens_details": None}
    return JSONResponse(
        {
            "id": f"score-{request_id(request)}",
            "object": "list",
            "created": int(time.time()),
            "model": body.model,
            "data": [{"index": i, "object": "score", "score": float(s)} for i, s in enumerate(scores)],
            "usage": usage,
        }
    )


async def _scores(
    triton: ModelServer, info: ModelInfo, body: ScoringFields, sides: Sides, rid: str
) -> tuple[np.ndarray, int]:
    """The score of each pair (text_1 broadcast when it is one) and the tokens the model ran."""
    n1, n2 = len(sides.texts_1), len(sides.texts_2)
    if info.cross_encoder:
        lefts = sides.texts_1 * n2 if n1 == 1 else sides.texts_1
        outputs = await _run(triton, info, body, lefts, sides.texts_2, rid, sides)
        return outputs["score"].reshape(-1), _tokens(outputs)
    outputs = await _run(triton, info, body, sides.texts_1 + sides.texts_2, None, rid, sides)
    return _cosine(outputs["embedding"][:n1], outputs["embedding"][n1:]), _tokens(outputs)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, `a` broadcast when it is one row (torch's cosine_similarity:
    the norms' product kept from zero by 1e-8)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-8)


def _tokens(outputs: Outputs) -> int:
    return int(outputs["num_input_tokens"].sum())


async def _run(
    triton: ModelServer,
    info: ModelInfo,
    body: ScoringFields,
    texts: list[str],
    pairs: list[str] | None,
    rid: str,
    sides: Sides,
) -> Outputs:
    """The model's outputs for all rows (`in_pieces`), its errors naming the client's field."""
    parameters = body.parameters(info.cross_encoder)

    async def piece(rows: slice, piece_id: str) -> Outputs:
        try:
            if pairs is None:
                return await triton.embed(body.model, texts[rows], parameters, piece_id)
            return await triton.embed(body.model, texts[rows], parameters, piece_id, pairs=pairs[rows])
        except InvalidField as exc:
            raise _for_client(exc, rows.start, sides, pairs is not None) from None

    return await in_pieces(len(texts), info.max_batch_size, rid, piece)


def _for_client(exc: InvalidField, offset: int, sides: Sides, pairs: bool) -> BadRequest:
    """The model's error naming the request's field: a row of a piece is a pair (cross-encoder:
    named by its second text, the one that varies) or a text of either side (embeddings)."""
    field = exc.field or ""
    name, _, rest = field.partition("[")
    if name not in ("text_input", "text_pair") or not rest[:-1].isdigit():
        return exc  # a parameter (truncate_prompt_tokens, use_activation) keeps its name
    row = offset + int(rest[:-1])
    n1 = len(sides.texts_1)
    if pairs:
        param = sides.name(row, second=True)
    else:
        param = sides.name(row, second=False) if row < n1 else sides.name(row - n1, second=True)
    return BadRequest(f"{param}: {exc.problem}", param=param)
