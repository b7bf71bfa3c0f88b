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
# Served by `triton_llm.encoders.runner` (one forward pass per batch, Triton's dynamic batching).
TEXT_EMBEDDING = "text_embedding"
FILL_MASK = "fill_mask"
TOKEN_CLASSIFICATION = "token_classification"
SEQUENCE_CLASSIFICATION = "sequence_classification"
ENCODER_TASKS = (TEXT_EMBEDDING, FILL_MASK, TOKEN_CLASSIFICATION, SEQUENCE_CLASSIFICATION)
TASKS = GENERATION_TASKS + ENCODER_TASKS

BACKENDS = ("auto", "vllm", "huggingface")


class SettingError(ValueError):
    """A model.json setting this model cannot honour; `key` names it (the make_repo CLI maps it to its argument)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"model.json: {message}")
        self.key = key


# Architecture name suffix -> task, as in KServe's huggingfaceserver.
_SUFFIX_TASKS = (
    ("ForCausalLM", TEXT_GENERATION),
    ("LMHeadModel", TEXT_GENERATION),
    ("ForMaskedLM", FILL_MASK),
    ("ForTokenClassification", TOKEN_CLASSIFICATION),
    ("ForSequenceClassification", SEQUENCE_CLASSIFICATION),
)


def infer_task(config: Any, sentence_transformers: bool = False) -> str:
    """The task a transformers config describes, or SettingError.

    A sentence-transformers folder (one with modules.json) is an embedding model whatever
    its architecture (all-MiniLM-L6-v2 says `BertModel`).
    """
    if sentence_transformers:
        return TEXT_EMBEDDING
    if getattr(config, "is_encoder_decoder", False):
        return TEXT2TEXT_GENERATION
    for arch in getattr(config, "architectures", None) or []:
        for suffix, task in _SUFFIX_TASKS:
            if arch.endswith(suffix):
                return task
    archs = getattr(config, "architectures", None)
    raise SettingError("task", f"cannot tell the task of architectures {archs}; set `task` in model.json")


def resolve_task(
    settings: dict[str, Any], config: Any, served: tuple[str, ...] = TASKS, sentence_transformers: bool = False
) -> str:
    """The task to serve, checked against the model and against the tasks this runner serves."""
    task = settings.get("task") or infer_task(config, sentence_transformers)
    if task not in TASKS:
        raise SettingError("task", f"task must be one of {TASKS}, got {task!r}")
    if task not in served:
        runner = "triton_llm.encoders.runner" if task in ENCODER_TASKS else "triton_llm.generation.runner"
        raise SettingError("task", f"task {task!r} is served by {runner}: import its TritonPythonModel in model.py")
    if task == TEXT2TEXT_GENERATION and not getattr(config, "is_encoder_decoder", False):
        raise SettingError("task", f"task {task!r} needs an encoder-decoder model; this one is decoder-only")
    if task == TEXT_GENERATION and getattr(config, "is_encoder_decoder", False):
        raise SettingError("task", f"task {task!r} needs a decoder-only model; this one is encoder-decoder")
    if task in _HEAD_TASKS and not _has_head(config, task):
        # Loading would put a randomly initialised head on the model: answers would be noise.
        archs = getattr(config, "architectures", None)
        raise SettingError("task", f"task {task!r} needs a model trained with that head; this one is {archs}")
    return task


_HEAD_TASKS = (FILL_MASK, TOKEN_CLASSIFICATION, SEQUENCE_CLASSIFICATION)


def _has_head(config: Any, task: str) -> bool:
    suffixes = tuple(suffix for suffix, head in _SUFFIX_TASKS if head == task)
    return any(arch.endswith(suffixes) for arch in getattr(config, "architectures", None) or [])


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
    """'vllm' or 'huggingface' for this model and task, or SettingError naming `backend`."""
    backend = settings.get("backend", "auto")
    if backend not in BACKENDS:
        raise SettingError("backend", f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "huggingface":
        return backend
    supported = task == TEXT_GENERATION and vllm_supports(config)
    if backend == "vllm" and not supported:
        archs = getattr(config, "architectures", None)
        raise SettingError("backend", f"backend 'vllm' cannot serve {archs} for {task}; use 'huggingface' or 'auto'")
    return "vllm" if supported else "huggingface"
