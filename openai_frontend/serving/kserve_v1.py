"""KServe's v1 protocol on the encoder models: `{"instances": [texts]}` -> `{"predictions": [...]}`,
each prediction in the shape KServe's Hugging Face runtime gives for the model's task
(huggingfaceserver's encoder_model.py, its `postprocess`):

- sequence_classification: the class id; with the model's `return_probabilities`, {class: p}
  with p rounded to 4 decimals;
- token_classification: [[class id per token]]; with `return_probabilities`, [{class: p}] per
  token. Each text's own tokens (special tokens included): KServe pads every text of a request
  to the longest and predicts the padding too, which says nothing about the text;
- fill_mask: the decoded argmax of every mask of the text, one string; with
  `return_probabilities`, per mask [{token id: "p"}] over the vocabulary (p as a string, as KServe);
- text_embedding: the pooled, normalised vector.

The task is read from the model's outputs (triton_llm/encoders/protocol.py), the texts go in
pieces of the model's `max_batch_size` (serving/pieces.py), and a text the model refuses is a
400 naming `instances.<i>`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from openai_frontend.backend import ModelInfo, ModelServer, Outputs
from openai_frontend.errors import BadRequest, InvalidField
from openai_frontend.serving.pieces import in_pieces

_ROW = re.compile(r"text_input\[(\d+)\]")


async def task_of(triton: ModelServer, info: ModelInfo) -> str:
    outputs = {t["name"]: t for t in (await triton.metadata(info.name))["outputs"]}
    if "embedding" in outputs:
        return "text_embedding"
    if "output-0" not in outputs:
        what = "a cross-encoder: use /rerank or /score" if "score" in outputs else "not an encoder model"
        raise BadRequest(f"model: '{info.name}' is {what}; v1 predict serves the encoder tasks", param="model")
    if "label" not in outputs:
        return "fill_mask"
    return "sequence_classification" if outputs["output-0"]["shape"][-1] == 1 else "token_classification"


async def predict(triton: ModelServer, info: ModelInfo, texts: list[str], rid: str) -> dict[str, Any]:
    task = await task_of(triton, info)

    async def piece(rows: slice, piece_id: str) -> Outputs:
        try:
            return await triton.embed(info.name, texts[rows], {}, piece_id)
        except InvalidField as exc:
            if exc.field and (match := _ROW.fullmatch(exc.field)):
                field = f"instances.{rows.start + int(match.group(1))}"
                raise BadRequest(f"{field}: {exc.problem}", param=field) from None
            raise

    outputs = await in_pieces(len(texts), info.max_batch_size, rid, piece)
    return {"predictions": PREDICTIONS[task](outputs)}


def _p4(p: float) -> float:
    return float(f"{p:.4f}")


def _sequence(out: Outputs) -> list:
    if "probabilities" in out:
        return [{str(j): _p4(p) for j, p in enumerate(row)} for row in out["probabilities"].tolist()]
    return out["output-0"].reshape(-1).tolist()


def _tokens(out: Outputs) -> list:
    counts = out["num_input_tokens"].reshape(-1).tolist()
    if "probabilities" in out:
        return [[{str(j): _p4(p) for j, p in enumerate(token)} for token in row[:n]]
                for row, n in zip(out["probabilities"].tolist(), counts, strict=True)]  # fmt: skip
    return [[row[:n]] for row, n in zip(out["output-0"].tolist(), counts, strict=True)]


def _fill_mask(out: Outputs) -> list:
    if "probabilities" in out:
        # A text's mask rows; those past its last mask are zero padding (sum 0, not 1).
        return [[[{str(t): f"{p:.4f}"} for t, p in enumerate(mask)] for mask in row if np.sum(mask) > 0.5]
                for row in out["probabilities"]]  # fmt: skip
    return [v.decode("utf-8", "backslashreplace") for v in out["output-0"].reshape(-1)]


def _embedding(out: Outputs) -> list:
    return out["embedding"].tolist()


PREDICTIONS = {
    "sequence_classification": _sequence,
    "token_classification": _tokens,
    "fill_mask": _fill_mask,
    "text_embedding": _embedding,
}
