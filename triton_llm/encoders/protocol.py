"""The tensor protocol of the encoder models, in one place (docs/protocol.md has the table).

Every task reads one input, `text_input` (a request's texts travel as the batch dimension,
shape [n, 1]), and its options as request parameters (`truncate_prompt_tokens`,
`dimensions`, `use_activation`); a cross-encoder also reads `text_pair`, the second text
of each row. The outputs are KServe's Hugging Face runtime's, per task, plus
`num_input_tokens`. Plain Python + numpy, no Triton and no torch import, so the parsing
rules are unit-tested without a server or a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from triton_llm.errors import InvalidInput

INPUTS: list[dict[str, Any]] = [{"name": "text_input", "data_type": "TYPE_STRING", "dims": [1]}]
# A cross-encoder's rows are pairs: (text_input[i], text_pair[i]) tokenized together, as
# `tokenizer(text, text_pair)` joins them ([CLS] query [SEP] document [SEP]). Optional: a
# row without a pair is scored alone.
CROSS_ENCODER_INPUTS: list[dict[str, Any]] = [
    *INPUTS,
    {"name": "text_pair", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
]

# Every task's last output: how many tokens each text took, after truncation.
NUM_INPUT_TOKENS: dict[str, Any] = {"name": "num_input_tokens", "data_type": "TYPE_INT32", "dims": [1]}

# The outputs of each task (`triton_llm.encoders.heads` names which list a task returns).
EMBEDDING_OUTPUTS: list[dict[str, Any]] = [
    {"name": "embedding", "data_type": "TYPE_FP32", "dims": [-1]},
    NUM_INPUT_TOKENS,
]
SEQUENCE_CLASSIFICATION_OUTPUTS: list[dict[str, Any]] = [
    {"name": "output-0", "data_type": "TYPE_INT64", "dims": [1]},
    {"name": "label", "data_type": "TYPE_STRING", "dims": [1]},
    {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1]},
    # Ours: the raw logits, always (vLLM's /classify and /pooling apply their activation in the frontend).
    {"name": "logits", "data_type": "TYPE_FP32", "dims": [-1]},
    NUM_INPUT_TOKENS,
]
TOKEN_CLASSIFICATION_OUTPUTS: list[dict[str, Any]] = [
    {"name": "output-0", "data_type": "TYPE_INT64", "dims": [-1]},
    {"name": "label", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1, -1]},
    # Ours: the raw logits per token (zeros past the end), always; named apart from a sequence's.
    {"name": "token_logits", "data_type": "TYPE_FP32", "dims": [-1, -1]},
    NUM_INPUT_TOKENS,
]
CROSS_ENCODER_OUTPUTS: list[dict[str, Any]] = [
    {"name": "score", "data_type": "TYPE_FP32", "dims": [1]},
    NUM_INPUT_TOKENS,
]
FILL_MASK_OUTPUTS: list[dict[str, Any]] = [
    {"name": "output-0", "data_type": "TYPE_STRING", "dims": [1]},
    {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1, -1]},
    NUM_INPUT_TOKENS,
]

PARAMETERS = ("truncate_prompt_tokens", "dimensions", "use_activation")


@dataclass
class EncodeRequest:
    """One Triton request: its texts and its parameters."""

    texts: list[str]
    truncate_prompt_tokens: int | None = None  # -1: the model's limit; else at most this many
    dimensions: int | None = None  # text_embedding: keep the first `dimensions` (matryoshka)
    text_pairs: list[str] | None = None  # cross_encoder: the second text of each row
    use_activation: bool | None = None  # cross_encoder: False gives the raw logit (vLLM's name)

    @classmethod
    def parse(cls, texts: list[str], parameters: dict[str, Any], text_pairs: list[str] | None = None) -> EncodeRequest:
        """A request from its decoded texts and its parameters, or InvalidInput naming the parameter."""
        unknown = sorted(set(parameters) - set(PARAMETERS))
        if unknown:
            raise InvalidInput(unknown[0], f"unknown parameter (known: {', '.join(PARAMETERS)})")
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise InvalidInput("text_pair", f"has {len(text_pairs)} rows; text_input has {len(texts)}")
        activation = parameters.get("use_activation")
        if isinstance(activation, str) and activation in ("true", "false"):
            activation = activation == "true"  # Triton's HTTP parameters may carry booleans as strings
        if activation is not None and not isinstance(activation, bool):
            raise InvalidInput("use_activation", f"must be true or false, got {activation!r}")
        return cls(
            texts=texts,
            truncate_prompt_tokens=_int_param(parameters, "truncate_prompt_tokens", minimum=-1),
            dimensions=_int_param(parameters, "dimensions", minimum=1),
            text_pairs=text_pairs,
            use_activation=activation,
        )


def parse_request(text_input: np.ndarray, parameters: str | None, text_pair: np.ndarray | None = None) -> EncodeRequest:
    """A request from its `text_input` (and `text_pair`) arrays (bytes from Triton, or str)
    and its parameters' JSON, or InvalidInput naming the field."""
    texts = _texts(text_input, "text_input")
    pairs = None if text_pair is None else _texts(text_pair, "text_pair")
    try:
        decoded = json.loads(parameters or "{}")
    except json.JSONDecodeError:
        decoded = {}  # as before: Triton hands us its own serialisation, not the client's text
    return EncodeRequest.parse(texts, decoded, pairs)


def _texts(array: np.ndarray, name: str) -> list[str]:
    try:
        return [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in array.reshape(-1)]
    except UnicodeDecodeError:
        raise InvalidInput(name, "is not valid UTF-8") from None


def _int_param(parameters: dict[str, Any], name: str, minimum: int) -> int | None:
    value = parameters.get(name)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # Triton's HTTP parameters may carry numbers as strings
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(name, f"must be an integer >= {minimum}, got {value!r}")
    if name == "truncate_prompt_tokens" and value == 0:
        raise InvalidInput(name, "must be -1 (the model's limit) or a positive number of tokens")
    return value
