"""The task-neutral encoder engine: texts in, forward passes shared across requests, arrays out.

Triton hands `encode` the requests it has queued (dynamic batching); every text of every
request goes through the model in as few padded forward passes as fit `max_batch_tokens`,
sorted by length so that short texts are not padded to a long one. A request that cannot
be served (a text over the length limit, a bad parameter) gets its own error; the others
in its batch are served. What differs between tasks (the head to load, the checks, the
per-text results and the output arrays) is the task object's (`triton_llm.encoders.heads`).

The model.json keys are those of `triton_llm.settings.EncoderSettings` (docs/settings.md).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from triton_llm import hf_loading
from triton_llm.encoders.heads import TASKS, EncoderTask, Features, Parts
from triton_llm.encoders.pooling import SentencePooling
from triton_llm.encoders.protocol import EncodeRequest
from triton_llm.errors import InvalidInput
from triton_llm.settings import EncoderSettings
from triton_llm.tasks import resolve_backend, resolve_task

logger = logging.getLogger(__name__)


def resolve_encoder_task(settings: EncoderSettings) -> tuple[type[EncoderTask], Any, SentencePooling | None]:
    """(task class, transformers config, sentence-transformers pooling or None) of an encoder model."""
    config = hf_loading.load_config(settings)
    pooling = SentencePooling.from_model(hf_loading.model_files(settings))
    task = resolve_task(settings, config, served=tuple(TASKS), sentence_transformers=pooling is not None)
    resolve_backend(settings, config, task)  # refuses `backend: vllm` with a message
    return TASKS[task], config, pooling


class Encoder:
    """One encoder model on `device` (`hf_loading.device`; default: the first GPU if any, else
    the CPU): `load` it, then `encode` batches of requests."""

    head: EncoderTask  # the task's part, built by `load` once the tokenizer is there

    def __init__(self, settings: EncoderSettings, device: str | None = None):
        self.settings = settings
        self.device = device or hf_loading.device(None)
        self.task_class, self.config, self.pooling = resolve_encoder_task(settings)
        self.tokenizer: Any = None
        self.model: Any = None
        self.max_length = 0

    def load(self) -> None:
        import torch
        import transformers

        s = self.settings
        # KServe's option: keep the case where the tokenizer would lower-case.
        self.tokenizer = hf_loading.load_tokenizer(s, **({"do_lower_case": False} if s.disable_lower_case else {}))
        self.tokenizer.padding_side = "right"  # pooling and per-token outputs read rows from the left
        self.model = hf_loading.load_model(getattr(transformers, self.task_class.auto_class), s, self.device)
        positions = getattr(self.config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        limit = s.max_length or (self.pooling and self.pooling.max_seq_length) or positions
        self.max_length = int(min(limit, positions, self.tokenizer.model_max_length))
        self.head = self.task_class(Parts(s, self.config, self.tokenizer, self.pooling))
        with torch.inference_mode():
            self.head.start(lambda texts: self._run(self._tokenize(texts, None)))
        logger.info(
            "encoder ready: %s, task %s, dtype %s, max_length %d%s",
            hf_loading.model_id(s), self.task_class.task, self.model.dtype, self.max_length, self.head.describe(),
        )  # fmt: skip

    # -- requests ---------------------------------------------------------------------

    def encode(self, requests: list[EncodeRequest]) -> list[dict[str, np.ndarray] | InvalidInput]:
        """Outputs (or the error) of each request, in order; all texts in shared forward passes."""
        import torch

        results: list[dict[str, np.ndarray] | InvalidInput] = []
        features: list[Features] = []  # the texts of all servable requests
        spans: list[range] = []  # each request's texts in `features`
        for request in requests:
            try:
                self.head.check_pairs(request)
                self.head.check(request)
                mine = self._tokenize(request.texts, request.truncate_prompt_tokens, request.text_pairs)
            except InvalidInput as exc:
                results.append(exc)
                mine = []
            else:
                results.append({})
            spans.append(range(len(features), len(features) + len(mine)))
            features.extend(mine)
        outputs: list[Any] = [None] * len(features)
        # Set on the thread that runs the passes: OpenMP's thread count is per calling thread.
        if (threads := self.settings.num_threads) and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        with torch.inference_mode():
            for chunk in self._chunks(features):
                for k, out in zip(chunk, self._run([features[k] for k in chunk]), strict=True):
                    outputs[k] = out
        for i, request in enumerate(requests):
            if not isinstance(results[i], InvalidInput):
                span = spans[i]
                results[i] = self._assemble(request, features[span.start : span.stop], outputs[span.start : span.stop])
        return results

    def _tokenize(self, texts: list[str], truncate: int | None, pairs: list[str] | None = None) -> list[Features]:
        """Each text (with its pair: one sequence, the tokenizer's pair template; truncation
        takes from the longer of the two first) as features, or InvalidInput naming its row."""
        if not texts:
            return []
        limit = None if truncate is None else self.max_length if truncate == -1 else min(truncate, self.max_length)
        encoded = self.tokenizer(
            texts,
            pairs,
            add_special_tokens=not self.settings.disable_special_tokens,
            truncation=limit is not None,
            max_length=limit,
            return_token_type_ids=self.settings.return_token_type_ids,
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
            self.head.check_text(f"text_input[{j}]", f)
        return features

    def _chunks(self, features: list[Features]) -> list[list[int]]:
        """Indices of `features` in forward-pass groups: by length, at most max_batch_tokens
        padded tokens each (at least one text per group)."""
        order = sorted(range(len(features)), key=lambda k: len(features[k]["input_ids"]))
        chunks: list[list[int]] = []
        for k in order:
            n = len(features[k]["input_ids"])  # the longest so far, as the order is ascending
            if chunks and (len(chunks[-1]) + 1) * n <= self.settings.max_batch_tokens:
                chunks[-1].append(k)
            else:
                chunks.append([k])
        return chunks

    def _run(self, batch: list[Features]) -> list[Any]:
        """Per-text results of one right-padded forward pass, as the task reads them."""
        padded = {k: v.to(self.model.device) for k, v in self.tokenizer.pad(batch, return_tensors="pt").items()}
        names = self.settings.tensor_input_names or padded
        output = self.model(**{k: v for k, v in padded.items() if k in names})
        return self.head.run(output, padded["attention_mask"], batch)

    def _assemble(self, request: EncodeRequest, features: list[Features], results: list[Any]) -> dict[str, np.ndarray]:
        n = len(features)
        out = {"num_input_tokens": np.array([len(f["input_ids"]) for f in features], dtype=np.int32).reshape(n, 1)}
        if n:
            out.update(self.head.assemble(request, results))
        return out
