"""vLLM's `AsyncEngineArgs` from model.json: our keys dropped, defaults that make a CPU usable added.

Keys are vLLM's own (`VllmSettings` checks each is an AsyncEngineArgs field), so an entry
from Triton's vllm_backend moves over as it is. On a machine with no GPU, unless model.json
says otherwise: `dtype` from what the CPU computes fast, `enforce_eager`, and a 2 GiB KV
cache (VLLM_CPU_KVCACHE_SPACE); with tensor or pipeline parallel, each rank's cores (cpu_ranks.py,
which also refuses Ray there); with LoRA adapters, a spare LoRA slot (lora.py). On a GPU nothing is
added: the model's dtype and vLLM's own defaults stand.
"""

from __future__ import annotations

import os
from typing import Any

from triton_llm import hf_loading
from triton_llm.generation.engines.vllm.cpu_ranks import bind_ranks, refuse_ray, warm_up_pipeline
from triton_llm.generation.engines.vllm.lora import keep_a_cpu_slot_empty
from triton_llm.settings import VllmSettings, keys


def engine_args(s: VllmSettings) -> dict[str, Any]:
    """AsyncEngineArgs keyword arguments for the machine we run on: the keys model.json gives, and CPU defaults."""
    args = s.model_dump(exclude_unset=True, exclude=set(keys(VllmSettings, vllm=False)))
    args["model"] = hf_loading.model_id(s)
    if s.tokenizer:
        args["tokenizer"] = s.tokenizer.removeprefix("hf://")
    if not hf_loading.has_gpu():
        args.setdefault("dtype", hf_loading.cpu_dtype())
        warm_up_pipeline(args)  # pipeline parallel: dynamo's trace, not eager (cpu_ranks.py)
        # CUDA graphs do not exist on CPU; compiling takes ~60 s more for no gain.
        args.setdefault("enforce_eager", True)
        refuse_ray(args)
        bind_ranks(args)  # tensor/pipeline parallel: each rank its own cores (cpu_ranks.py)
        if "kv_cache_memory_bytes" in args:
            # vLLM's CPU platform lets the (whole-GiB) variable override model.json's exact size: a tiny model's
            # cache of a few MiB is otherwise 1 GiB at least.
            os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)
        else:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        if (s.lora_modules or s.allow_runtime_lora_updating) and args.get("enable_lora"):
            # Runtime adapters: at least one, however many model.json declares.
            keep_a_cpu_slot_empty(args, max(len(s.lora_modules or ()), int(s.allow_runtime_lora_updating)))
    return args
