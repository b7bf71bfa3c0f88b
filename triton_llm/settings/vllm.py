"""The vLLM engine's keys: any of vLLM's `AsyncEngineArgs`, and its LoRA adapters."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from triton_llm.errors import SettingError
from triton_llm.settings.common import setting
from triton_llm.settings.generation import GenerationSettings


def split_lora(value: Any) -> Any:
    """vLLM's `name=path` string as an object; anything else as it is."""
    if isinstance(value, str) and "=" in value:
        name, path = value.split("=", 1)
        return {"name": name, "path": path}
    return value


class LoraModule(BaseModel):
    """One LoRA adapter: vLLM's `LoRAModulePath` (`name=path` on its command line)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    path: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _name_equals_path(cls, value: Any) -> Any:
        return split_lora(value)


class VllmSettings(GenerationSettings):
    """The keys of every model, and any of vLLM's `AsyncEngineArgs` (`max_num_seqs`, `gpu_memory_utilization`,
    `enforce_eager`, ...), passed to vLLM as they are; a key that is not one of them stops the load.
    On a machine with no GPU, unless given: the CPU's fast `dtype`, `enforce_eager: true` and a 2 GiB
    KV cache (`VLLM_CPU_KVCACHE_SPACE`); see triton_llm.generation.engines.vllm.args.
    """

    family: ClassVar[str] = "vLLM engine"

    lora_modules: list[LoraModule] | None = setting()
    """LoRA adapters a request may name (`lora_name`), as vLLM's `--lora-modules`: `{"name": ..., "path": ...}`
    objects or `name=path` strings, a relative path resolved against model.json's folder; needs `enable_lora: true`.
    vllm_backend's `multi_lora.json` beside model.json (`{"name": "path"}`) adds to them when `enable_lora` is on."""
    # Runtime LoRA (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING, per model here): engines/vllm/lora_control.py.
    allow_runtime_lora_updating: bool = setting(False)
    """Adapters loaded and unloaded while the model serves (the frontend's `/v1/load_lora_adapter` and
    `/v1/unload_lora_adapter`, the `lora_control` input); needs `enable_lora: true`. `max_loras` and
    `max_lora_rank` bound what can be loaded."""
    lora_allowed_paths: list[str] | None = setting()
    """Absolute folders an adapter loaded at run time may come from (its `lora_path` must be inside one);
    default: none, so every `lora_path` is refused until this is set."""
    lora_resolver: str | None = setting()
    """Where an unknown `lora_name` is looked up on first use, as vLLM's filesystem resolver: an absolute folder
    (`<folder>/<name>` holding `adapter_config.json`) or `hf://org/name[@revision]` (the repository's `<name>/`
    folder); needs `allow_runtime_lora_updating`."""

    @classmethod
    def check_extras(cls, extras: Mapping[str, Any], where: str) -> None:
        if not extras:
            return  # no need to import vLLM
        known = vllm_engine_keys()
        unknown = sorted(set(extras) - known)
        if known and unknown:
            raise SettingError(unknown[0], f"{unknown[0]} is not a vLLM engine argument (AsyncEngineArgs)", where)


@lru_cache(maxsize=1)
def vllm_engine_keys() -> frozenset[str]:
    """AsyncEngineArgs' fields, model.json's other keys for vLLM; empty without vLLM (the engine then cannot load)."""
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
    except ImportError:
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(AsyncEngineArgs))
