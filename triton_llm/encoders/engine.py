"""Encoder models: embeddings and KServe's encoder tasks, with Triton's dynamic batching.

Triton hands `encode` the requests it has queued (dynamic batching); every text of every
request goes through the model in as few padded forward passes as fit `max_batch_tokens`,
sorted by length so that short texts are not padded to a long one. A request that cannot
be served (a text over the length limit, a bad parameter) gets its own error; the others
in its batch are served.

Tasks (`triton_llm.tasks`), outputs as KServe's Hugging Face runtime gives them:
  - text_embedding: `embedding` [n, dim], pooled and normalised as the model's
    sentence-transformers configuration says (`triton_llm.encoders.pooling`);
  - sequence_classification: `output-0` class id [n, 1], `label` its name;
  - token_classification: `output-0` class id per token [n, tokens] (-1 past a text's end);
  - fill_mask: `output-0` the predicted token(s) of each text's mask(s) [n, 1];
  - with `return_probabilities`, also `probabilities`: softmax over the classes (or the
    vocabulary, per mask) in the shape of `output-0` plus one axis.
Every task returns `num_input_tokens` [n, 1]. docs/protocol.md has the tensor table.

model.json keys: model, tokenizer, revision, tokenizer_revision, trust_remote_code, dtype
(`auto`: the CPU's fast one, as for generation), task, backend (only transformers serves these tasks), and KServe's
options: max_length, return_probabilities, return_token_type_ids, disable_lower_case,
disable_special_tokens, tensor_input_names; ours: max_batch_tokens (padded tokens per
forward pass, default 16384), is_matryoshka / matryoshka_dimensions (which `dimensions`
a request may ask for; also read from the model's config, as vLLM does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triton_llm.config import OUR_KEYS, cpu_dtype, has_gpu, resolve_model_id
from triton_llm.encoders.pooling import FileReader, SentencePooling
from triton_llm.errors import InvalidInput
from triton_llm.tasks import (
    ENCODER_TASKS,
    FILL_MASK,
    SEQUENCE_CLASSIFICATION,
    TEXT_EMBEDDING,
    TOKEN_CLASSIFICATION,
    resolve_backend,
    resolve_task,
)

logger = logging.getLogger(__name__)

_READ = {
    "model", "tokenizer", "revision", "tokenizer_revision", "trust_remote_code", "dtype", "max_length",
    "return_probabilities", "return_token_type_ids", "disable_lower_case", "disable_special_tokens",
    "tensor_input_names", "max_batch_tokens", "is_matryoshka", "matryoshka_dimensions", *OUR_KEYS,
}  # fmt: skip

INPUTS = [{"name": "text_input", "data_type": "TYPE_STRING", "dims": [1]}]
_TOKENS = {"name": "num_input_tokens", "data_type": "TYPE_INT32", "dims": [1]}
OUTPUTS: dict[str, list[dict[str, Any]]] = {
    TEXT_EMBEDDING: [{"name": "embedding", "data_type": "TYPE_FP32", "dims": [-1]}, _TOKENS],
    SEQUENCE_CLASSIFICATION: [
        {"name": "output-0", "data_type": "TYPE_INT64", "dims": [1]},
        {"name": "label", "data_type": "TYPE_STRING", "dims": [1]},
        {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1]},
        _TOKENS,
    ],
    TOKEN_CLASSIFICATION: [
        {"name": "output-0", "data_type": "TYPE_INT64", "dims": [-1]},
        {"name": "label", "data_type": "TYPE_STRING", "dims": [-1]},
        {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1, -1]},
        _TOKENS,
    ],
    FILL_MASK: [
        {"name": "output-0", "data_type": "TYPE_STRING", "dims": [1]},
        {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1, -1]},
        _TOKENS,
    ],
}


@dataclass
class EncodeRequest:
    """One Triton request: its texts and its parameters."""

    texts: list[str]
    truncate_prompt_tokens: int | None = None  # -1: the model's limit; else at most this many
    dimensions: int | None = None  # text_embedding: keep the first `dimensions` (matryoshka)

    @classmethod
    def parse(cls, texts: list[str], parameters: dict[str, Any]) -> EncodeRequest:
        unknown = sorted(set(parameters) - {"truncate_prompt_tokens", "dimensions"})
        if unknown:
            raise InvalidInput(unknown[0], "unknown parameter (known: truncate_prompt_tokens, dimensions)")
        return cls(
            texts=texts,
            truncate_prompt_tokens=_int_param(parameters, "truncate_prompt_tokens", minimum=-1),
            dimensions=_int_param(parameters, "dimensions", minimum=1),
        )


def model_files(model_id: str, revision: str | None) -> FileReader:
    """Reads files of a local folder or, for a hub id, through huggingface_hub's cache."""
    local = Path(model_id)
    if local.is_dir():
        return lambda name: (local / name) if (local / name).is_file() else None

    def read(name: str) -> Path | None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            return Path(hf_hub_download(model_id, name, revision=revision))
        except EntryNotFoundError:
            return None

    return read


def resolve_encoder_task(settings: dict[str, Any]) -> tuple[str, Any, SentencePooling | None]:
    """(task, transformers config, sentence-transformers pooling or None) of an encoder model."""
    from transformers import AutoConfig

    model_id = resolve_model_id(settings["model"])
    config = AutoConfig.from_pretrained(
        model_id, revision=settings.get("revision"), trust_remote_code=bool(settings.get("trust_remote_code", False))
    )
    pooling = SentencePooling.from_model(model_files(model_id, settings.get("revision")))
    task = resolve_task(settings, config, served=ENCODER_TASKS, sentence_transformers=pooling is not None)
    resolve_backend(settings, config, task)  # refuses `backend: vllm` with a message
    if task == TEXT_EMBEDDING and pooling is None:
        pooling = SentencePooling()  # a plain transformers model: mean pooling, as KServe does
    return task, config, pooling


class Encoder:
    def __init__(self, settings: dict[str, Any]):
        ignored = sorted(set(settings) - _READ)
        if ignored:
            logger.warning("encoder model: model.json keys without effect here: %s", ignored)
        self.settings = settings
        self.task, self.config, self.pooling = resolve_encoder_task(settings)
        s = settings
        self.return_probabilities = bool(s.get("return_probabilities", False))
        self.add_special_tokens = not s.get("disable_special_tokens", False)
        self.return_token_type_ids = s.get("return_token_type_ids")
        names = s.get("tensor_input_names")
        self.tensor_input_names = names.split(",") if isinstance(names, str) else names
        self.max_batch_tokens = int(s.get("max_batch_tokens", 16384))
        # vLLM's names, in model.json or the model's config: a list of sizes, or any size.
        self.matryoshka = s.get("matryoshka_dimensions", getattr(self.config, "matryoshka_dimensions", None))
        self.is_matryoshka = bool(self.matryoshka or s.get("is_matryoshka", getattr(self.config, "is_matryoshka", 0)))
        self.tokenizer: Any = None
        self.model: Any = None
        self.max_length = 0
        self.dimension = 0

    def load(self) -> None:
        import torch
        from transformers import (
            AutoModel,
            AutoModelForMaskedLM,
            AutoModelForSequenceClassification,
            AutoModelForTokenClassification,
            AutoTokenizer,
        )

        s = self.settings
        model_id = resolve_model_id(s["model"])
        trust = bool(s.get("trust_remote_code", False))
        tokenizer_kwargs: dict[str, Any] = {}
        if s.get("disable_lower_case"):
            tokenizer_kwargs["do_lower_case"] = False
        self.tokenizer = AutoTokenizer.from_pretrained(
            resolve_model_id(s.get("tokenizer") or model_id),
            revision=s.get("tokenizer_revision") or s.get("revision"),
            trust_remote_code=trust,
            **tokenizer_kwargs,
        )
        self.tokenizer.padding_side = "right"  # pooling and per-token outputs read rows from the left
        cls = {
            TEXT_EMBEDDING: AutoModel,
            FILL_MASK: AutoModelForMaskedLM,
            TOKEN_CLASSIFICATION: AutoModelForTokenClassification,
            SEQUENCE_CLASSIFICATION: AutoModelForSequenceClassification,
        }[self.task]
        # As for generation: on a CPU its fast dtype (all-MiniLM-L6-v2 in bf16 here: 845 vs
        # 480 embeddings/s in batches of 64, cosine >= 0.9999 with float32); on a GPU the
        # model's own.
        dtype = s.get("dtype", "auto")
        if dtype == "auto" and not has_gpu():
            dtype = cpu_dtype()
        self.model = cls.from_pretrained(model_id, revision=s.get("revision"), dtype=dtype, trust_remote_code=trust)
        self.model.eval()
        if has_gpu():
            self.model.to("cuda")
        positions = getattr(self.config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        limit = s.get("max_length") or (self.pooling and self.pooling.max_seq_length) or positions
        self.max_length = int(min(limit, positions, self.tokenizer.model_max_length))
        if self.task == TEXT_EMBEDDING:
            with torch.inference_mode():
                self.dimension = int(self._embed_rows([self._tokenize(["dimension probe"], None)[0]])[0].shape[-1])
        logger.info(
            "encoder ready: %s, task %s, dtype %s, max_length %d%s",
            model_id, self.task, self.model.dtype, self.max_length,
            f", dimension {self.dimension}" if self.dimension else "",
        )  # fmt: skip

    # -- requests ---------------------------------------------------------------------

    def encode(self, requests: list[EncodeRequest]) -> list[dict[str, np.ndarray] | InvalidInput]:
        """Outputs (or the error) of each request, in order; all texts in shared forward passes."""
        import torch

        results: list[dict[str, np.ndarray] | InvalidInput] = []
        features: list[dict[str, list[int]]] = []  # the texts of all servable requests
        spans: list[range] = []  # each request's texts in `features`
        for request in requests:
            try:
                self._check(request)
                mine = self._tokenize(request.texts, request.truncate_prompt_tokens)
            except InvalidInput as exc:
                results.append(exc)
                mine = []
            else:
                results.append({})
            spans.append(range(len(features), len(features) + len(mine)))
            features.extend(mine)
        outputs: list[Any] = [None] * len(features)
        with torch.inference_mode():
            for chunk in self._chunks(features):
                for k, out in zip(chunk, self._run([features[k] for k in chunk]), strict=True):
                    outputs[k] = out
        for i, request in enumerate(requests):
            if not isinstance(results[i], InvalidInput):
                span = spans[i]
                results[i] = self._assemble(request, features[span.start : span.stop], outputs[span.start : span.stop])
        return results

    def _check(self, request: EncodeRequest) -> None:
        if request.dimensions is not None:
            if self.task != TEXT_EMBEDDING:
                raise InvalidInput("dimensions", f"only embedding models take it; this one does {self.task}")
            if request.dimensions > self.dimension:
                raise InvalidInput("dimensions", f"{request.dimensions} is more than this model's {self.dimension}")
            allowed = self.matryoshka or (range(1, self.dimension + 1) if self.is_matryoshka else ())
            if request.dimensions != self.dimension and request.dimensions not in allowed:
                what = f"only {sorted(allowed)}" if self.matryoshka else f"only its full {self.dimension}"
                raise InvalidInput(
                    "dimensions", f"this model does not support matryoshka truncation to {request.dimensions} ({what})"
                )

    def _tokenize(self, texts: list[str], truncate: int | None) -> list[dict[str, list[int]]]:
        if not texts:
            return []
        limit = None if truncate is None else self.max_length if truncate == -1 else min(truncate, self.max_length)
        encoded = self.tokenizer(
            texts,
            add_special_tokens=self.add_special_tokens,
            truncation=limit is not None,
            max_length=limit,
            return_token_type_ids=self.return_token_type_ids,
        )
        features = [{k: v[j] for k, v in encoded.items()} for j in range(len(texts))]
        for j, f in enumerate(features):
            n = len(f["input_ids"])
            if truncate is None and n > self.max_length:
                raise InvalidInput(
                    f"text_input[{j}]",
                    f"{n} tokens, over this model's limit of {self.max_length} tokens "
                    "(shorten it, or ask for truncation with truncate_prompt_tokens)",
                )
            if self.task == FILL_MASK and self.tokenizer.mask_token_id not in f["input_ids"]:
                raise InvalidInput(f"text_input[{j}]", f"no {self.tokenizer.mask_token} token to fill")
        return features

    def _chunks(self, features: list[dict[str, list[int]]]) -> list[list[int]]:
        """Indices of `features` in forward-pass groups: by length, at most max_batch_tokens
        padded tokens each (at least one text per group)."""
        order = sorted(range(len(features)), key=lambda k: len(features[k]["input_ids"]))
        chunks: list[list[int]] = []
        for k in order:
            n = len(features[k]["input_ids"])  # the longest so far, as the order is ascending
            if chunks and (len(chunks[-1]) + 1) * n <= self.max_batch_tokens:
                chunks[-1].append(k)
            else:
                chunks.append([k])
        return chunks

    def _forward(self, features: list[dict[str, list[int]]]):
        """(model output, attention mask) of one right-padded batch."""
        padded = {k: v.to(self.model.device) for k, v in self.tokenizer.pad(features, return_tensors="pt").items()}
        names = self.tensor_input_names or padded
        return self.model(**{k: v for k, v in padded.items() if k in names}), padded["attention_mask"]

    def _embed_rows(self, features):
        out, mask = self._forward(features)
        return self.pooling(out.last_hidden_state, mask)

    def _run(self, features: list[dict[str, list[int]]]) -> list[Any]:
        """Per-text results of one forward pass (torch tensors, unpadded)."""
        if self.task == TEXT_EMBEDDING:
            return list(self._embed_rows(features))
        out, _ = self._forward(features)
        logits = out.logits.float()
        if self.task == SEQUENCE_CLASSIFICATION:
            return list(logits)
        if self.task == TOKEN_CLASSIFICATION:
            return [logits[j, : len(f["input_ids"])] for j, f in enumerate(features)]
        # fill_mask: the rows at the mask positions
        mask_id = self.tokenizer.mask_token_id
        return [logits[j, [p for p, t in enumerate(f["input_ids"]) if t == mask_id]] for j, f in enumerate(features)]

    def _assemble(self, request: EncodeRequest, features, results) -> dict[str, np.ndarray]:
        import torch

        n = len(features)
        out: dict[str, np.ndarray] = {
            "num_input_tokens": np.array([len(f["input_ids"]) for f in features], dtype=np.int32).reshape(n, 1)
        }
        if n == 0:
            return out
        if self.task == TEXT_EMBEDDING:
            vectors = self.pooling.finish(torch.stack(results), request.dimensions)
            out["embedding"] = vectors.cpu().numpy().astype(np.float32)
            return out
        probs = [torch.softmax(r, dim=-1).cpu().numpy() for r in results] if self.return_probabilities else None
        if self.task == SEQUENCE_CLASSIFICATION:
            ids = [int(r.argmax()) for r in results]
            out["output-0"] = np.array(ids, dtype=np.int64).reshape(n, 1)
            out["label"] = np.array([[self._label(c)] for c in ids], dtype=np.object_)
            if probs is not None:
                out["probabilities"] = np.stack(probs).astype(np.float32)
        elif self.task == TOKEN_CLASSIFICATION:
            width = max(r.shape[0] for r in results)
            ids = np.full((n, width), -1, dtype=np.int64)
            labels = np.full((n, width), b"", dtype=np.object_)
            for j, r in enumerate(results):
                row = r.argmax(dim=-1).tolist()
                ids[j, : len(row)] = row
                labels[j, : len(row)] = [self._label(c) for c in row]
            out["output-0"], out["label"] = ids, labels
            if probs is not None:
                out["probabilities"] = _padded(probs, width)
        else:  # fill_mask: as KServe, the decoded argmax of every mask of a text, in one string
            out["output-0"] = np.array(
                [[self.tokenizer.decode(r.argmax(dim=-1).tolist()).encode()] for r in results], dtype=np.object_
            )
            if probs is not None:
                out["probabilities"] = _padded(probs, max(p.shape[0] for p in probs))
        return out

    def _label(self, class_id: int) -> bytes:
        return str(getattr(self.config, "id2label", {}).get(class_id, class_id)).encode()


def _padded(arrays: list[np.ndarray], width: int) -> np.ndarray:
    """[n, width, classes] from per-text [k, classes] arrays, zero past each text's end."""
    out = np.zeros((len(arrays), width, arrays[0].shape[-1]), dtype=np.float32)
    for j, a in enumerate(arrays):
        out[j, : a.shape[0]] = a
    return out


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
