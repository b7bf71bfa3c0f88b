"""Which task a model serves and which engine serves it, as KServe's Hugging Face runtime decides.

The task comes from model.json's `task` or from the model's config (`architectures`,
`is_encoder_decoder`); the backend from model.json's `backend`: `auto` asks vLLM whether
it implements the architecture natively and falls back to transformers.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import TYPE_CHECKING, Any

from triton_llm.errors import SettingError

if TYPE_CHECKING:
    from triton_llm.settings import ModelSettings

logger = logging.getLogger(__name__)


class Task(str, Enum):
    """model.json's `task`; the values are KServe's task names, so plain strings compare equal."""

    TEXT_GENERATION = "text_generation"
    TEXT2TEXT_GENERATION = "text2text_generation"
    # Served by `triton_llm.encoders.runner` (one forward pass per batch, Triton's dynamic batching).
    TEXT_EMBEDDING = "text_embedding"
    FILL_MASK = "fill_mask"
    TOKEN_CLASSIFICATION = "token_classification"
    SEQUENCE_CLASSIFICATION = "sequence_classification"
    # A sequence classifier with one label scoring (query, document) pairs: vLLM's and
    # sentence-transformers' cross-encoder, served by /v1/rerank and /v1/score.
    CROSS_ENCODER = "cross_encoder"

    def __str__(self) -> str:
        return self.value


GENERATION_TASKS = (Task.TEXT_GENERATION, Task.TEXT2TEXT_GENERATION)
ENCODER_TASKS = (
    Task.TEXT_EMBEDDING,
    Task.FILL_MASK,
    Task.TOKEN_CLASSIFICATION,
    Task.SEQUENCE_CLASSIFICATION,
    Task.CROSS_ENCODER,
)

# Architecture name suffix -> task, as in KServe's huggingfaceserver.
_SUFFIX_TASKS = (
    ("ForCausalLM", Task.TEXT_GENERATION),
    ("LMHeadModel", Task.TEXT_GENERATION),
    ("ForMaskedLM", Task.FILL_MASK),
    ("ForTokenClassification", Task.TOKEN_CLASSIFICATION),
    ("ForSequenceClassification", Task.SEQUENCE_CLASSIFICATION),
    ("ForSequenceClassification", Task.CROSS_ENCODER),
)
# Hub's image-text-to-text architectures (transformers' AutoModelForImageTextToText): a decoder with a vision tower.
_VLM_SUFFIXES = ("ForConditionalGeneration", "ForImageTextToText")
_HEAD_TASKS = (Task.FILL_MASK, Task.TOKEN_CLASSIFICATION, Task.SEQUENCE_CLASSIFICATION, Task.CROSS_ENCODER)


def infer_task(config: Any, sentence_transformers: bool = False) -> Task:
    """The task a transformers config describes, or SettingError.

    A sentence-transformers folder (one with modules.json) is an embedding model whatever
    its architecture (all-MiniLM-L6-v2 says `BertModel`). A sequence classifier with one
    label is a cross-encoder, as vLLM reads it (its score API needs `num_labels == 1`).
    """
    if sentence_transformers:
        return Task.TEXT_EMBEDDING
    if getattr(config, "is_encoder_decoder", False):
        return Task.TEXT2TEXT_GENERATION
    for arch in getattr(config, "architectures", None) or []:
        if arch.endswith(_VLM_SUFFIXES) and getattr(config, "vision_config", None) is not None:
            # Image-text-to-text (Idefics3, SmolVLM, LLaVA, Qwen2-VL): text generation with image input.
            return Task.TEXT_GENERATION
        for suffix, task in _SUFFIX_TASKS:
            if arch.endswith(suffix):
                one_label = task == Task.SEQUENCE_CLASSIFICATION and getattr(config, "num_labels", 0) == 1
                return Task.CROSS_ENCODER if one_label else task
    archs = getattr(config, "architectures", None)
    raise SettingError("task", f"cannot tell the task of architectures {archs}; set `task` in model.json")


def resolve_task(
    settings: ModelSettings, config: Any, served: tuple[Task, ...] = tuple(Task), sentence_transformers: bool = False
) -> Task:
    """The task to serve, checked against the model and against the tasks this runner serves."""
    task = settings.task or infer_task(config, sentence_transformers)
    if task not in served:
        runner = "triton_llm.encoders.runner" if task in ENCODER_TASKS else "triton_llm.generation.runner"
        raise SettingError("task", f"task '{task}' is served by {runner}: import its TritonPythonModel in model.py")
    encoder_decoder = getattr(config, "is_encoder_decoder", False)
    if task == Task.TEXT2TEXT_GENERATION and not encoder_decoder:
        raise SettingError("task", f"task '{task}' needs an encoder-decoder model; this one is decoder-only")
    if task == Task.TEXT_GENERATION and encoder_decoder:
        raise SettingError("task", f"task '{task}' needs a decoder-only model; this one is encoder-decoder")
    if task in _HEAD_TASKS and not _has_head(config, task):
        # Loading would put a randomly initialised head on the model: answers would be noise.
        archs = getattr(config, "architectures", None)
        raise SettingError("task", f"task '{task}' needs a model trained with that head; this one is {archs}")
    labels = getattr(config, "num_labels", None)
    if task == Task.CROSS_ENCODER and labels != 1:
        # vLLM's rule: one relevance logit per pair; a classifier's several are not a score.
        raise SettingError("task", f"task '{task}' needs a model with one label (num_labels 1); this one has {labels}")
    return task


def _has_head(config: Any, task: Task) -> bool:
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


def transformers_serves_images(config: Any) -> bool:
    """Whether transformers' `AutoModelForImageTextToText` loads this vision-language model (the
    transformers engine's images: engines/hf/multimodal.py)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return getattr(config, "model_type", None) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def resolve_backend(settings: ModelSettings, config: Any, task: Task) -> str:
    """'vllm' or 'huggingface' for this model and task, or SettingError naming `backend`.

    The value itself was checked when model.json was parsed (`ModelSettings.backend`).
    """
    vision = getattr(config, "vision_config", None) is not None
    if vision and settings.backend == "huggingface" and not transformers_serves_images(config):
        archs = getattr(config, "architectures", None)
        raise SettingError("backend", f"transformers has no image-text-to-text class for {archs}")
    if settings.backend == "huggingface":
        return "huggingface"
    supported = task == Task.TEXT_GENERATION and vllm_supports(config)
    if vision and not supported and not transformers_serves_images(config):
        archs = getattr(config, "architectures", None)
        raise SettingError("backend", f"neither vLLM here nor transformers' image-text-to-text classes serve {archs}")
    if settings.backend == "vllm" and not supported:
        archs = getattr(config, "architectures", None)
        raise SettingError("backend", f"backend 'vllm' cannot serve {archs} for {task}; use 'huggingface' or 'auto'")
    return "vllm" if supported else "huggingface"


def resolve(
    settings: ModelSettings, config: Any, served: tuple[Task, ...] = tuple(Task), sentence_transformers: bool = False
) -> tuple[Task, str]:
    """The task to serve and the backend that serves it, checked as `resolve_task` and `resolve_backend` do."""
    task = resolve_task(settings, config, served, sentence_transformers)
    return task, resolve_backend(settings, config, task)
