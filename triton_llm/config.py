"""`model.json`: engine settings as data, beside `config.pbtxt` (vllm_backend convention).

Keys are vLLM's `AsyncEngineArgs`, so an entry from Triton's vllm_backend moves over as it
is. Our additions:
  - a relative `model` path is resolved against the folder holding model.json;
  - `backend` ("auto" | "vllm" | "huggingface") and `task` pick the engine (triton_llm.tasks);
  - on a machine with no GPU, defaults that make vLLM usable there: `dtype` from what the
    CPU computes fast, `enforce_eager`, and a 2 GiB KV cache (VLLM_CPU_KVCACHE_SPACE).
On a GPU nothing is added: the model's dtype and vLLM's own defaults stand.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MODEL_JSON = "model.json"
OUR_KEYS = ("backend", "task")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_dtype() -> str:
    """bfloat16 where the CPU has bf16 instructions, else float32.

    Emulated bf16 was ~5x slower than float32 on an AVX2-only EPYC (see STACK.md).
    """
    return "bfloat16" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "float32"


def has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def load_model_json(model_dir: str | os.PathLike) -> dict[str, Any]:
    """Read `<model_dir>/model.json`, resolving a relative local `model` path."""
    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it holds the engine settings (see docs/protocol.md)")
    try:
        settings = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(settings, dict) or "model" not in settings:
        raise ValueError(f"{path} must be a JSON object with at least a 'model' key")
    for key in ("model", "tokenizer"):
        value = settings.get(key)
        if isinstance(value, str) and not value.startswith("hf://"):
            local = Path(model_dir) / value  # an absolute value stays as it is
            if value.startswith((".", "/")) or local.exists():
                settings[key] = str(local.resolve())
    return settings


def resolve_model_id(model: str) -> str:
    """`hf://org/name` -> `org/name`; local folders and bare ids pass through.

    vLLM and transformers download bare ids themselves through huggingface_hub, which
    honours HF_TOKEN and HF_HUB_OFFLINE.
    """
    return model.removeprefix("hf://")


def vllm_engine_args(settings: dict[str, Any]) -> dict[str, Any]:
    """AsyncEngineArgs keyword arguments for the machine we run on."""
    args = {k: v for k, v in settings.items() if k not in OUR_KEYS}
    args["model"] = resolve_model_id(args["model"])
    if not has_gpu():
        args.setdefault("dtype", cpu_dtype())
        # CUDA graphs do not exist on CPU; compiling takes ~60 s more for no gain.
        args.setdefault("enforce_eager", True)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    return args
