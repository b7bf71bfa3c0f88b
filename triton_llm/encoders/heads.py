"""One class per encoder task: what the task puts on top of the transformer.

The engine (`triton_llm.encoders.engine`) knows no task: it tokenizes, batches and runs the
model, and asks the task object which transformers class to load, whether a request or a
text suits the task, what each text's result is in a forward pass's output, and how a
request's results become its output arrays. `TASKS` maps each task to its class: a new task
is one class here, its line in `TASKS`, its outputs in `triton_llm.encoders.protocol` and
its name in `triton_llm.tasks.Task`.

Outputs as KServe's Hugging Face runtime gives them:
  - text_embedding: `embedding` [n, dim], pooled and normalised as the model's
    sentence-transformers configuration says (`triton_llm.encoders.pooling`);
  - sequence_classification: `output-0` class id [n, 1], `label` its name;
  - token_classification: `output-0` class id per token [n, tokens] (-1 past a text's end);
  - fill_mask: `output-0` the predicted token(s) of each text's mask(s) [n, 1];
  - cross_encoder (ours, vLLM's semantics): `score` [n, 1] of each (text_input, text_pair)
    row, the logit through the model's activation (`triton_llm.encoders.activation`);
  - with `return_probabilities`, also `probabilities`: softmax over the classes (or the
    vocabulary, per mask) in the shape of `output-0` plus one axis;
  - always, the classification tasks' raw logits (ours, for vLLM's /classify and /pooling):
    `logits` [n, classes], `token_logits` [n, tokens, classes] (zeros past a text's end).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from triton_llm.encoders import protocol
from triton_llm.encoders.activation import cross_encoder_activation
from triton_llm.encoders.pooling import SentencePooling
from triton_llm.encoders.protocol import EncodeRequest
from triton_llm.errors import InvalidInput
from triton_llm.settings import EncoderSettings
from triton_llm.tasks import Task

# One tokenized text: input_ids, attention_mask and whatever else the tokenizer returns.
Features = dict[str, list[int]]


@dataclass
class Parts:
    """What the tasks read of the loaded model and of its settings."""

    settings: EncoderSettings
    config: Any  # the transformers config
    tokenizer: Any
    pooling: SentencePooling | None = None  # a sentence-transformers model's


class EncoderTask:
    """A task's part of serving a request; the engine calls it in the order of the methods below."""

    task: ClassVar[Task]
    auto_class: ClassVar[str]  # the transformers class that loads the model with this task's head
    outputs: ClassVar[list[dict[str, Any]]]  # the output tensors (config.pbtxt specs)
    inputs: ClassVar[list[dict[str, Any]]] = protocol.INPUTS
    pairs: ClassVar[bool] = False  # reads `text_pair` and `use_activation` (cross-encoders)

    def __init__(self, parts: Parts):
        self.parts = parts

    def start(self, probe: Callable[[list[str]], list[torch.Tensor]]) -> None:
        """Once the model is loaded: learn what only a forward pass tells (`probe` runs texts
        and returns their results as `run` gives them). Nothing by default."""

    def describe(self) -> str:
        """What the "encoder ready" log line adds for this task."""
        return ""

    def check_pairs(self, request: EncodeRequest) -> None:
        """InvalidInput for a cross-encoder's input or parameter sent to another task."""
        if self.pairs:
            return
        if request.text_pairs is not None:
            raise InvalidInput("text_pair", f"only cross-encoder models take it; this one does {self.task}")
        if request.use_activation is not None:
            raise InvalidInput("use_activation", f"only cross-encoder models take it; this one does {self.task}")

    def check(self, request: EncodeRequest) -> None:
        """InvalidInput for a request parameter this task does not take."""
        if request.dimensions is not None:
            raise InvalidInput("dimensions", f"only embedding models take it; this one does {self.task}")

    def check_text(self, field: str, features: Features) -> None:
        """InvalidInput, naming `field`, for a tokenized text this task cannot serve."""

    def run(self, output: Any, mask: torch.Tensor, batch: list[Features]) -> list[torch.Tensor]:
        """Each text's result (unpadded torch tensors) from one right-padded forward pass."""
        raise NotImplementedError

    def assemble(self, request: EncodeRequest, results: list[torch.Tensor]) -> dict[str, np.ndarray]:
        """A request's output arrays (`num_input_tokens` aside) from its texts' results, at least one."""
        raise NotImplementedError


class Embedding(EncoderTask):
    task = Task.TEXT_EMBEDDING
    auto_class = "AutoModel"
    outputs = protocol.EMBEDDING_OUTPUTS

    def __init__(self, parts: Parts):
        super().__init__(parts)
        # A plain transformers model: mean pooling, as KServe does.
        self.pooling = parts.pooling or SentencePooling()
        # vLLM's names, in model.json or the model's config: a list of sizes, or any size.
        s, config = parts.settings, parts.config
        listed = s.matryoshka_dimensions
        self.matryoshka = listed if listed is not None else getattr(config, "matryoshka_dimensions", None)
        flag = s.is_matryoshka if s.is_matryoshka is not None else getattr(config, "is_matryoshka", 0)
        self.is_matryoshka = bool(self.matryoshka or flag)
        self.dimension = 0

    def start(self, probe: Callable[[list[str]], list[torch.Tensor]]) -> None:
        self.dimension = int(probe(["dimension probe"])[0].shape[-1])

    def describe(self) -> str:
        return f", dimension {self.dimension}"

    def check(self, request: EncodeRequest) -> None:
        if request.dimensions is None:
            return
        if request.dimensions > self.dimension:
            raise InvalidInput("dimensions", f"{request.dimensions} is more than this model's {self.dimension}")
        allowed = self.matryoshka or (range(1, self.dimension + 1) if self.is_matryoshka else ())
        if request.dimensions != self.dimension and request.dimensions not in allowed:
            what = f"only {sorted(allowed)}" if self.matryoshka else f"only its full {self.dimension}"
            raise InvalidInput(
                "dimensions", f"this model does not support matryoshka truncation to {request.dimensions} ({what})"
            )

    def run(self, output: Any, mask: torch.Tensor, batch: list[Features]) -> list[torch.Tensor]:
        return list(self.pooling(output.last_hidden_state, mask))

    def assemble(self, request: EncodeRequest, results: list[torch.Tensor]) -> dict[str, np.ndarray]:
        vectors = self.pooling.finish(torch.stack(results), request.dimensions)
        return {"embedding": vectors.cpu().numpy().astype(np.float32)}


class _Logits(EncoderTask):
    """The tasks whose head gives logits over classes (or the vocabulary)."""

    def probabilities(self, results: list[torch.Tensor]) -> list[np.ndarray] | None:
        """Softmax of each result when model.json asks for `return_probabilities`, else None."""
        if not self.parts.settings.return_probabilities:
            return None
        return [torch.softmax(r, dim=-1).cpu().numpy() for r in results]

    def label(self, class_id: int) -> bytes:
        return str(getattr(self.parts.config, "id2label", {}).get(class_id, class_id)).encode()


class SequenceClassification(_Logits):
    task = Task.SEQUENCE_CLASSIFICATION
    auto_class = "AutoModelForSequenceClassification"
    outputs = protocol.SEQUENCE_CLASSIFICATION_OUTPUTS

    def run(self, output: Any, mask: torch.Tensor, batch: list[Features]) -> list[torch.Tensor]:
        return list(output.logits.float())

    def assemble(self, request: EncodeRequest, results: list[torch.Tensor]) -> dict[str, np.ndarray]:
        n = len(results)
        ids = [int(r.argmax()) for r in results]
        out = {
            "output-0": np.array(ids, dtype=np.int64).reshape(n, 1),
            "label": np.array([[self.label(c)] for c in ids], dtype=np.object_),
            "logits": torch.stack(results).cpu().numpy().astype(np.float32),
        }
        probs = self.probabilities(results)
        if probs is not None:
            out["probabilities"] = np.stack(probs).astype(np.float32)
        return out


class CrossEncoder(EncoderTask):
    task = Task.CROSS_ENCODER
    auto_class = "AutoModelForSequenceClassification"
    outputs = protocol.CROSS_ENCODER_OUTPUTS
    inputs = protocol.CROSS_ENCODER_INPUTS
    pairs = True

    def __init__(self, parts: Parts):
        super().__init__(parts)
        self.activation, self.activation_name = cross_encoder_activation(parts.config)

    def describe(self) -> str:
        return f", activation {self.activation_name}"

    def run(self, output: Any, mask: torch.Tensor, batch: list[Features]) -> list[torch.Tensor]:
        return list(output.logits.float())

    def assemble(self, request: EncodeRequest, results: list[torch.Tensor]) -> dict[str, np.ndarray]:
        logits = torch.stack(results)
        scores = logits if request.use_activation is False else self.activation(logits)
        return {"score": scores.cpu().numpy().astype(np.float32).reshape(len(results), 1)}


class TokenClassification(_Logits):
    task = Task.TOKEN_CLASSIFICATION
    auto_class = "AutoModelForTokenClassification"
    outputs = protocol.TOKEN_CLASSIFICATION_OUTPUTS

    def run(self, output: Any, mask: torch.Tensor, batch: list[Features]) -> list[torch.Tensor]:
        logits = output.logits.float()
        return [logits[j, : len(f["input_ids"])] for j, f in enumerate(batch)]

    def assemble(self, request: EncodeRequest, results: list[torch.Tensor]) -> dict[str, np.ndarray]:
        width = max(r.shape[0] for r in results)
        ids = np.full((len(results), width), -1, dtype=np.int64)
        labels = np.full((len(results), width), b"", dtype=np.object_)
        for j, r in enumerate(results):
            row = r.argmax(dim=-1).tolist()
            ids[j, : len(row)] = row
            labels[j, : len(row)] = [self.label(c) for c in row]
        out = {"output-0": ids, "label": labels, "token_logits": _padded([r.cpu().numpy() for r in results], width)}
        probs = self.probabilities(results)
        if probs is not None:
            out["probabilities"] = _padded(probs, width)
        return out


class FillMask(_Logits):
    task = Task.FILL_MASK
    auto_class = "AutoModelForMaskedLM"
    outputs = protocol.FILL_MASK_OUTPUTS

    def check_text(self, field: str, features: Features) -> None:
        tokenizer = self.parts.tokenizer
        if tokenizer.mask_token_id not in features["input_ids"]:
            raise InvalidInput(field, f"no {tokenizer.mask_token} token to fill")

    def run(self, output: Any, mask: torch.Tensor, batch: list[Features]) -> list[torch.Tensor]:
        # The rows at each text's mask positions.
        logits = output.logits.float()
        mask_id = self.parts.tokenizer.mask_token_id
        return [logits[j, [p for p, t in enumerate(f["input_ids"]) if t == mask_id]] for j, f in enumerate(batch)]

    def assemble(self, request: EncodeRequest, results: list[torch.Tensor]) -> dict[str, np.ndarray]:
        # As KServe: the decoded argmax of every mask of a text, in one string.
        decode = self.parts.tokenizer.decode
        out = {"output-0": np.array([[decode(r.argmax(dim=-1).tolist()).encode()] for r in results], dtype=np.object_)}
        probs = self.probabilities(results)
        if probs is not None:
            out["probabilities"] = _padded(probs, max(p.shape[0] for p in probs))
        return out


TASKS: dict[Task, type[EncoderTask]] = {
    Task.TEXT_EMBEDDING: Embedding,
    Task.SEQUENCE_CLASSIFICATION: SequenceClassification,
    Task.TOKEN_CLASSIFICATION: TokenClassification,
    Task.FILL_MASK: FillMask,
    Task.CROSS_ENCODER: CrossEncoder,
}


def _padded(arrays: list[np.ndarray], width: int) -> np.ndarray:
    """[n, width, classes] from per-text [k, classes] arrays, zero past each text's end."""
    out = np.zeros((len(arrays), width, arrays[0].shape[-1]), dtype=np.float32)
    for j, a in enumerate(arrays):
        out[j, : a.shape[0]] = a
    return out
