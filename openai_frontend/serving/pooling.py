"""vLLM's /classify and /pooling served by the encoder models (vLLM 0.32
`entrypoints/pooling/classify/serving.py` and `pooling/serving.py`).

A model has one pooling task, as in vLLM (its default on /pooling; another is a 400 naming
`task`): an embedding model `embed` (its `embedding`: the sentence-transformers pooling and
normalisation vLLM applies too), a sequence classifier `classify` (`logits`), a token
classifier `token_classify` (`token_logits`, every token of the text, special ones included,
as vLLM's token pooler returns them). The activation is vLLM's pooler's, applied here to the
raw logits: softmax over the classes (per token for `token_classify`); `use_activation: false`
gives the logits. /classify answers vLLM's ClassificationData: the softmax (`probs`), the
argmax's `label` (the model's `id2label`, as its `label` output names it) and `num_classes`.
Texts go to the model in pieces of its `max_batch_size` (`serving.pieces`).
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import numpy as np
from fastapi.responses import JSONResponse

from openai_frontend.backend import ModelInfo, ModelServer, Outputs
from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import BadRequest, InvalidField
from openai_frontend.schemas.pooling import ClassifyRequest, PoolingRequest
from openai_frontend.serving.fields import for_endpoint
from openai_frontend.serving.pieces import in_pieces


def model_task(info: ModelInfo) -> str | None:
    """The model's vLLM pooling task, by the outputs its config declares (None: it has none)."""
    if info.embed:
        return "embed"
    if "logits" in info.outputs:
        return "classify"
    if "token_logits" in info.outputs:
        return "token_classify"
    return None


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


async def _run(
    triton: ModelServer, info: ModelInfo, body: ClassifyRequest, endpoint: Endpoint, rid: str, params: dict[str, Any]
) -> Outputs:
    texts = body.texts

    async def piece(rows: slice, piece_id: str) -> Outputs:
        try:
            out = await triton.embed(info.name, texts[rows], params, piece_id)
        except InvalidField as exc:
            raise for_endpoint(exc, endpoint, rows.start) from None
        if "token_logits" in out:  # pieces pad to their own longest text: one row per text instead
            counts = out["num_input_tokens"].reshape(-1)
            rows_ = np.empty(len(counts), dtype=object)
            rows_[:] = [out["token_logits"][j, : int(c)] for j, c in enumerate(counts)]
            out["token_logits"] = rows_
        return out

    return await in_pieces(len(texts), info.max_batch_size, rid, piece)


def _usage(outputs: Outputs) -> dict[str, Any]:
    tokens = int(outputs["num_input_tokens"].sum())
    return {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0, "prompt_tokens_details": None,
            "completion_tokens_details": None}  # fmt: skip


def _parameters(body: ClassifyRequest) -> dict[str, Any]:
    return body.model_dump(include={"truncate_prompt_tokens"}, exclude_none=True)


async def classify(triton: ModelServer, info: ModelInfo, body: ClassifyRequest, rid: str) -> JSONResponse:
    outputs = await _run(triton, info, body, Endpoint.CLASSIFY, rid, _parameters(body))
    logits = outputs["logits"].astype(np.float32)
    probs = logits if body.use_activation is False else _softmax(logits)
    labels = [v.decode() if isinstance(v, bytes) else str(v) for v in outputs["label"].reshape(-1)]
    data = [{"index": i, "label": labels[i], "probs": p.tolist(), "num_classes": len(p)} for i, p in enumerate(probs)]
    return JSONResponse(
        {
            "id": f"classify-{uuid.uuid4().hex}",
            "object": "list",
            "created": int(time.time()),
            "model": body.model,
            "data": data,
            "usage": _usage(outputs),
        }
    )


async def pool(triton: ModelServer, info: ModelInfo, body: PoolingRequest, rid: str) -> JSONResponse:
    own = model_task(info)
    task = body.task or own
    if task != own:
        raise BadRequest(
            f"task: Unsupported task: {task!r} Supported tasks: ({own!r},); this model pools as {own!r}", param="task"
        )
    if body.dimensions is not None and task != "embed":
        raise BadRequest("dimensions: only an embedding model takes it", param="dimensions")
    if body.use_activation is False and task == "embed":
        raise BadRequest(
            "use_activation: this model's embeddings are normalised by its configuration (modules.json); "
            "false is not supported",
            param="use_activation",
        )
    params = _parameters(body) | body.model_dump(include={"dimensions"}, exclude_none=True)
    outputs = await _run(triton, info, body, Endpoint.POOLING, rid, params)
    if task == "embed":
        rows: list[np.ndarray] = list(outputs["embedding"].astype(np.float32))
    else:
        logits = outputs["logits"] if task == "classify" else outputs["token_logits"]
        rows = [np.asarray(r, dtype=np.float32) for r in logits]
        if body.use_activation is not False:
            rows = [_softmax(r) for r in rows]
    if body.encoding_format == "base64":
        encoded: list[Any] = [base64.b64encode(r.astype("<f4").tobytes()).decode("ascii") for r in rows]
    else:
        encoded = [r.tolist() for r in rows]
    return JSONResponse(
        {
            "id": f"pooling-{uuid.uuid4().hex}",
            "object": "list",
            "created": int(time.time()),
            "model": body.model,
            "data": [{"index": i, "object": "pooling", "data": d} for i, d in enumerate(encoded)],
            "usage": _usage(outputs),
        }
    )
