"""/rerank and /score served, as vLLM serves them (vllm/entrypoints/pooling/scoring/).

Two kinds of model score a pair of texts:
  - a cross-encoder (task `cross_encoder`: `text_pair` in, `score` out) runs each pair as one
    row, `[CLS] text_1 [SEP] text_2 [SEP]`, and returns its activated logit;
  - an embedding model embeds every text once (the query once, not once per document) and
    the score is the cosine similarity of the two embeddings, computed here.
Rows go to the model in pieces of its `max_batch_size` (`serving.pieces`).
Usage counts what the model ran: every pair's tokens, or every text's once (vLLM's count).
The router only resolves the model and makes one call here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from fastapi.responses import JSONResponse

from openai_frontend.backend import ModelInfo, ModelServer, Outputs
from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import InvalidField
from openai_frontend.schemas.rerank import RerankRequest, ScoreRequest, ScoringFields
from openai_frontend.serving.fields import for_endpoint
from openai_frontend.serving.pieces import in_pieces


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

    def row(self, row: int, pairs: bool) -> str:
        """The request field of row `row` of the model's request (`fields.Rows`): a pair
        (cross-encoder: named by its second text, the one that varies), or a text of either
        side (embeddings: the first side's texts, then the second's)."""
        if pairs:
            return self.name(row, second=True)
        n1 = len(self.texts_1)
        return self.name(row, second=False) if row < n1 else self.name(row - n1, second=True)


async def rerank(triton: ModelServer, info: ModelInfo, body: RerankRequest, rid: str) -> JSONResponse:
    documents = body.document_texts
    sides = Sides([body.query], documents, "query", "documents", False, isinstance(body.documents, list))
    scores, tokens = await _scores(triton, info, body, sides, rid)
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
    return JSONResponse({"id": f"score-{rid}", "model": body.model, "usage": usage, "results": results})


async def score(triton: ModelServer, info: ModelInfo, body: ScoreRequest, rid: str) -> JSONResponse:
    name_1, name_2 = body.names
    listed_1, listed_2 = (isinstance(getattr(body, n), list) for n in body.names)
    sides = Sides(body.texts_1, body.texts_2, name_1, name_2, listed_1, listed_2)
    scores, tokens = await _scores(triton, info, body, sides, rid)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0, "prompt_tokens_details": None}
    return JSONResponse(
        {
            "id": f"score-{rid}",
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

    def row(i: int) -> str:
        return sides.row(i, pairs is not None)

    async def piece(part: slice, piece_id: str) -> Outputs:
        try:
            if pairs is None:
                return await triton.embed(info.name, texts[part], parameters, piece_id)
            return await triton.embed(info.name, texts[part], parameters, piece_id, pairs=pairs[part])
        except InvalidField as exc:
            raise for_endpoint(exc, Endpoint.SCORE, part.start, rows=row) from None

    return await in_pieces(len(texts), info.max_batch_size, rid, piece)
