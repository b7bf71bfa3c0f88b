"""Which settings class reads a model's model.json, and model.json parsed once into it.

The family (vLLM, transformers generation, encoders) follows from the task and the backend,
which the keys every model reads (`ModelSettings`) and the model's own config decide
(triton_llm.tasks). The runners, the factory and make-repo choose it by the same rule here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from triton_llm.settings.common import MODEL_JSON, ModelSettings, parse_settings
from triton_llm.settings.encoders import EncoderSettings
from triton_llm.settings.hf import HfGenerationSettings
from triton_llm.settings.vllm import VllmSettings
from triton_llm.tasks import ENCODER_TASKS, Task, resolve

logger = logging.getLogger(__name__)

FAMILIES: tuple[type[ModelSettings], ...] = (VllmSettings, HfGenerationSettings, EncoderSettings)


def family_of(task: Task, backend: str) -> type[ModelSettings]:
    """The settings class of a model served for `task` by `backend`."""
    if task in ENCODER_TASKS:
        return EncoderSettings
    return VllmSettings if backend == "vllm" else HfGenerationSettings


@dataclass(frozen=True)
class Typed:
    """model.json, parsed once: its family's settings, and the task and backend they were chosen for."""

    settings: ModelSettings
    task: Task
    backend: str


def parse_model_json(
    raw: Mapping[str, Any],
    config_of: Callable[[ModelSettings], Any],
    served: tuple[Task, ...] = tuple(Task),
    where: str = MODEL_JSON,
) -> Typed:
    """`raw` as its family's settings; `config_of` reads the model's config (hf_loading.load_config).

    The keys every model reads come first, since they say where the model is and which task and
    backend it asks for; the whole object is then parsed as the family those choose.
    """
    common = parse_settings(ModelSettings, raw, where)
    config = config_of(common)
    task, backend = resolve(common, config, served=served)
    logger.info(
        "%s: task %s, backend %s (asked: %s, architectures %s)",
        common.model, task, backend, common.backend, getattr(config, "architectures", None),
    )  # fmt: skip
    return Typed(parse_settings(family_of(task, backend), raw, where), task, backend)
