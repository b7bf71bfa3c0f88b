"""The generation engine for a model, and what its Triton config declares beyond the protocol's tensors.

Above both `engines/` and `chat/`: it reads model.json once into its family's settings
(`read_settings`), creates the engine that family names, wrapped in the chat layer
(`create_engine`), and lists the extra inputs that engine advertises (`advertised_inputs`).
The runner asks it for nothing else about engines, so a new engine is one package under
`engines/` and one branch here.

`auto` (the default backend) serves a model with vLLM when vLLM implements its architecture
and the task is text generation, with transformers otherwise (`triton_llm.tasks`).
"""

from __future__ import annotations

import os
from typing import Any

from triton_llm import hf_loading
from triton_llm.generation import images
from triton_llm.generation.chat import ChatEngine
from triton_llm.generation.engines.base import Engine
from triton_llm.generation.engines.vllm import lora
from triton_llm.settings import Typed, load_model_json, parse_model_json
from triton_llm.tasks import GENERATION_TASKS


def read_settings(model_dir: str | os.PathLike) -> Typed:
    """`<model_dir>/model.json`, parsed once into its family's settings, with the task and backend chosen."""
    return parse_model_json(load_model_json(model_dir), hf_loading.load_config, served=GENERATION_TASKS)


def create_engine(typed: Typed, args: dict[str, Any] | None = None) -> Engine:
    """The engine for these settings, in the chat layer; `args`: Triton's `initialize` arguments (they place it)."""
    if typed.backend == "vllm":
        from triton_llm.generation.engines.vllm.engine import VllmEngine

        return ChatEngine(VllmEngine(typed.settings), typed.settings)
    from triton_llm.generation.engines.hf.engine import HuggingFaceEngine

    return ChatEngine(HuggingFaceEngine(typed.settings, typed.task, hf_loading.device(args)), typed.settings)


def advertised_inputs(model_dir: str) -> list[dict[str, Any]]:
    """Optional config inputs beyond protocol.INPUTS: one per LoRA adapter model.json declares
    (engines/vllm/lora.py), which is how the frontend lists a model's adapters, and `image` for a
    vision-language model (images.py). Read before `initialize`, from model.json as it is: none when
    it cannot be read (`initialize` says why)."""
    return [*lora.advertised_inputs(model_dir), *images.advertised_inputs(model_dir)]
