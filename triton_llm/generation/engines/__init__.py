"""Generation engines behind one interface (`base.Engine`), chosen by model.json's `backend`, each
wrapped in the chat layer (`triton_llm.generation.chat`).

`auto` (the default) serves a model with vLLM when vLLM implements its architecture and
the task is text generation, with transformers otherwise (`triton_llm.tasks`).
"""

from __future__ import annotations

import logging
from typing import Any

from triton_llm import hf_loading
from triton_llm.generation.engines.base import Engine
from triton_llm.settings import HfGenerationSettings, ModelSettings, VllmSettings, parse_settings
from triton_llm.tasks import GENERATION_TASKS, resolve_backend, resolve_task

logger = logging.getLogger(__name__)


def create_engine(raw: dict[str, Any], args: dict[str, Any] | None = None) -> Engine:
    """The engine for model.json's settings (`raw`); `args`: Triton's `initialize` arguments, which place the model."""
    common = parse_settings(ModelSettings, raw)
    config = hf_loading.load_config(common)
    task = resolve_task(common, config, served=GENERATION_TASKS)
    backend = resolve_backend(common, config, task)
    logger.info(
        "%s: task %s, backend %s (asked: %s, architectures %s)",
        common.model, task, backend, common.backend, config.architectures,
    )  # fmt: skip
    from triton_llm.generation.chat import ChatEngine

    if backend == "vllm":
        from triton_llm.generation.engines.vllm_engine import VllmEngine

        settings = parse_settings(VllmSettings, raw)
        return ChatEngine(VllmEngine(settings), settings)
    from triton_llm.generation.engines.hf_engine import HuggingFaceEngine

    hf_settings = parse_settings(HfGenerationSettings, raw)
    return ChatEngine(HuggingFaceEngine(hf_settings, task, hf_loading.device(args)), hf_settings)
