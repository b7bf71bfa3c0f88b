"""A cross-encoder's score from its logit: the activation its config names, by vLLM's rule.

vLLM's classifier pooler (`model_executor/layers/pooler/activations.py::get_act_fn`) reads,
in order: the config's `problem_type` (`regression`: the logit as it is; the two
classification types: sigmoid for one label), then sentence-transformers' activation
(`sentence_transformers.activation_fn` in config.json, or the older
`sbert_ce_default_activation_function`; only `torch.nn.modules.*`, for safety), else
sigmoid for one label. That is what sentence-transformers' `CrossEncoder.predict` gives by
default for the same folder (it has no `problem_type` step).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from triton_llm.errors import SettingError

Activation = Callable[[torch.Tensor], torch.Tensor]


def cross_encoder_activation(config: Any) -> tuple[Activation, str]:
    """(the activation of a one-label classifier's logits, its name for the log)."""
    problem_type = getattr(config, "problem_type", None) or ""
    if problem_type == "regression":
        return _identity, "identity (problem_type regression)"
    if problem_type in ("single_label_classification", "multi_label_classification"):
        return torch.sigmoid, f"sigmoid (problem_type {problem_type})"
    st_config = getattr(config, "sentence_transformers", None)
    name = st_config.get("activation_fn") if isinstance(st_config, dict) else None
    name = name or getattr(config, "sbert_ce_default_activation_function", None)
    if name is None:
        return torch.sigmoid, "sigmoid"
    if not name.startswith("torch.nn.modules."):
        raise SettingError("model", f"activation {name!r} in the model's config: only torch.nn.modules.* are loaded")
    module_name, _, class_name = name.rpartition(".")
    try:
        module = getattr(importlib.import_module(module_name), class_name)()
    except (ImportError, AttributeError, TypeError) as exc:
        raise SettingError("model", f"activation {name!r} in the model's config cannot be built: {exc}") from None
    if isinstance(module, torch.nn.Identity):
        return _identity, name
    if isinstance(module, (torch.nn.Sigmoid, torch.nn.Softmax)):
        return torch.sigmoid, name  # vLLM: a classifier's activation, sigmoid for one label
    return module, name


def _identity(logits: torch.Tensor) -> torch.Tensor:
    return logits
