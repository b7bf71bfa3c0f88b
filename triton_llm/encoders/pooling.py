"""Sentence embeddings as the model's own sentence-transformers configuration defines them.

A sentence-transformers folder lists its modules in `modules.json`: the Transformer, then
Pooling (`1_Pooling/config.json`: which of cls / mean / max / ... to take, concatenated
when several are on), then optionally Normalize; `sentence_bert_config.json` holds the
length the model was trained for. We read those files and apply them to the transformer's
token embeddings, which keeps sentence-transformers (and its scipy / scikit-learn) out of
the server while giving its vectors (the tests compare with it: cosine >= 0.999).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from triton_llm.hf_loading import FileReader

# Legacy boolean keys of 1_Pooling/config.json -> sentence-transformers' mode names.
_LEGACY_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_MODES = set(_LEGACY_MODES.values())
_TYPES = {"Transformer", "Pooling", "Normalize"}


@dataclass(frozen=True)
class SentencePooling:
    modes: tuple[str, ...] = ("mean",)
    normalize: bool = False
    max_seq_length: int | None = None

    @classmethod
    def from_model(cls, read: FileReader) -> SentencePooling | None:
        """The pooling of a sentence-transformers model, or None when it is not one."""
        modules_file = read("modules.json")
        if modules_file is None:
            return None
        modules = json.loads(modules_file.read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        unsupported = [k for k in kinds if k not in _TYPES]
        if unsupported:
            raise ValueError(f"modules.json: sentence-transformers modules {unsupported} are not supported here")
        modes: tuple[str, ...] = ("mean",)  # sentence-transformers' default
        for module in modules:
            if module["type"].endswith("Pooling"):
                config_file = read(f"{module['path']}/config.json")
                if config_file is not None:
                    modes = _pooling_modes(json.loads(config_file.read_text()))
        bert_config = read("sentence_bert_config.json")
        max_seq_length = json.loads(bert_config.read_text()).get("max_seq_length") if bert_config else None
        return cls(modes=modes, normalize="Normalize" in kinds, max_seq_length=max_seq_length)

    def __call__(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[batch, tokens, dim] token embeddings and a right-padded [batch, tokens] mask ->
        [batch, dim * len(modes)] sentence embeddings (not normalised: see `finish`)."""
        hidden = hidden.float()
        weights = mask.unsqueeze(-1).float()
        counts = weights.sum(dim=1).clamp(min=1e-9)
        vectors = []
        for mode in self.modes:
            if mode == "cls":
                vectors.append(hidden[:, 0])
            elif mode == "max":
                vectors.append(hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values)
            elif mode == "mean":
                vectors.append((hidden * weights).sum(dim=1) / counts)
            elif mode == "mean_sqrt_len_tokens":
                vectors.append((hidden * weights).sum(dim=1) / counts.sqrt())
            elif mode == "weightedmean":
                # On the hidden states' device: a CPU tensor here failed on a GPU.
                positions = torch.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype, device=hidden.device)
                w = weights * positions.view(1, -1, 1)
                vectors.append((hidden * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-9))
            elif mode == "lasttoken":
                last = mask.sum(dim=1).clamp(min=1) - 1
                vectors.append(hidden[torch.arange(hidden.shape[0]), last])
        return torch.cat(vectors, dim=-1)

    def finish(self, vectors: torch.Tensor, dimensions: int | None = None) -> torch.Tensor:
        """Matryoshka truncation, then the model's normalisation (so that a shortened vector
        is a unit vector again, as OpenAI's `dimensions` gives)."""
        if dimensions is not None:
            vectors = vectors[:, :dimensions]
        if self.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
        return vectors


def _pooling_modes(config: dict) -> tuple[str, ...]:
    mode = config.get("pooling_mode")
    if mode is None:
        modes = tuple(name for key, name in _LEGACY_MODES.items() if config.get(key))
    else:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    unknown = [m for m in modes if m not in _MODES]
    if unknown or not modes:
        raise ValueError(f"1_Pooling/config.json: unsupported pooling {unknown or 'none'}")
    return modes
