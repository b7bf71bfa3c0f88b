"""Generation engines behind one interface (`base.Engine`), chosen by model.json's `backend`.

`auto` (the default) serves a model with vLLM when vLLM implements its architecture and
the task is text generation, with transformers otherwise (`triton_llm.tasks`).
"""

from __future__ import annotations

import logging
from typing import Any

from triton_llm.config import resolve_model_id
from triton_llm.generation.engines.base import Engine
from triton_llm.tasks import GENERATION_TASKS, resolve_backend, resolve_task

logger = logging.getLogger(__name__)


def load_config(settings: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(
        resolve_model_id(settings["model"]),
        revision=settings.get("revision"),
        trust_remote_code=bool(settings.get("trust_remote_code", False)),
    )


def create_engine(settings: dict[str, Any]) -> Engine:
    config = load_config(settings)
    task = resolve_task(settings, config, served=GENERATION_TASKS)
    backend = resolve_backend(settings, config, task)
    logger.info(
        "%s: task %s, backend %s (asked: %s, architectures %s)",
        settings["model"], task, backend, settings.get("backend", "auto"), config.architectures,
    )  # fmt: skip
    if backend == "vllm":
        from triton_llm.generation.engines.vllm_engine import VllmEngine

        return VllmEngine(settings)
    from triton_llm.generation.engines.hf_engine import HuggingFaceEngine

    return HuggingFaceEngine(settings, task)
