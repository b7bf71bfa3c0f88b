"""Which task a model serves and which engine serves it, as KServe's Hugging Face runtime decides.

The task comes from model.json's `task` or from the model's config (`architectures`,
`is_encoder_decoder`); the backend from model.json's `backend`: `auto` asks vLLM whether
it implements the architecture natively and falls back to transformers.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

TEXT_GENERATION = "text_generation"
TEXT2TEXT_GENERATION = "text2text_generation"
GENERATION_TASKS = (TEXT_GENERATION, TEXT2TEXT_GENERATION)

BACKENDS = ("auto", "vllm", "huggingface")

# Architecture name suffix -> task, as in KServe's huggingfaceserver.
_SUFFIX_TASKS = (
    ("ForCausalLM", TEXT_GENERATION),
    ("LMHeadModel", TEXT_GENERATION),
)


def infer_task(config: Any) -> str:
    """The generation task a transformers config describes, or ValueError."""
    if getattr(config, "is_encoder_decoder", False):
        return TEXT2TEXT_GENERATION
    for arch in getattr(config, "architectures", None) or []:
        for suffix, task in _SUFFIX_TASKS:
            if arch.endswith(suffix):
                return task
    archs = getattr(config, "architectures", None)
    raise ValueError(f"cannot tell the task of architectures {archs}; set `task` in model.json")


def resolve_task(settings: dict[str, Any], config: Any) -> str:
    task = settings.get("task") or infer_task(config)
    if task not in GENERATION_TASKS:
        raise ValueError(f"model.json: task must be one of {GENERATION_TASKS}, got {task!r}")
    if task == TEXT2TEXT_GENERATION and not getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"model.json: task {task!r} needs an encoder-decoder model; this one is decoder-only")
    if task == TEXT_GENERATION and getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"model.json: task {task!r} needs a decoder-only model; this one is encoder-decoder")
    return task


def vllm_supports(config: Any) -> bool:
    """Whether vLLM is installed and implements one of the model's architectures natively.

    vLLM's registry also lists its generic `Transformers*` wrappers, which would claim every
    model; those are not counted, as KServe does not count them.
    """
    try:
        from vllm.model_executor.models import ModelRegistry
    except ImportError:
        return False
    native = {a for a in ModelRegistry.get_supported_archs() if not a.startswith("Transformers")}
    return any(arch in native for arch in getattr(config, "architectures", None) or [])


def resolve_backend(settings: dict[str, Any], config: Any, task: str) -> str:
    """'vllm' or 'huggingface' for this model and task, or ValueError naming `backend`."""
    backend = settings.get("backend", "auto")
    if backend not in BACKENDS:
        raise ValueError(f"model.json: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "huggingface":
        return backend
    supported = task == TEXT_GENERATION and vllm_supports(config)
    if backend == "vllm" and not supported:
        archs = getattr(config, "architectures", None)
        raise ValueError(f"model.json: backend 'vllm' cannot serve {archs} for {task}; use 'huggingface' or 'auto'")
    return "vllm" if supported else "huggingface"
