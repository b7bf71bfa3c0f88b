"""Hugging Face loading in one place: config, tokenizer, weights, dtype and device.

The transformers generation engine and the encoder models load the same way: hub ids
through huggingface_hub (HF_TOKEN and HF_HUB_OFFLINE honoured), `hf://` stripped, the
tokenizer at `tokenizer_revision` else `revision`, custom code only with
`trust_remote_code`. On a CPU the weights take the dtype the CPU computes fast; on a GPU the
model's own, on the device Triton gave the instance.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from triton_llm.settings import ModelSettings

# Reads one file of the model by name: its local path, or None when the model has no such file.
FileReader = Callable[[str], Path | None]


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

    Emulated bf16 was ~5x slower than float32 on an AVX2-only EPYC (docs/machine.md).
    """
    return "bfloat16" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "float32"


def has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def model_id(s: ModelSettings) -> str:
    """`hf://org/name` -> `org/name`; local folders and bare ids pass through."""
    return s.model.removeprefix("hf://")


def load_config(s: ModelSettings) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_id(s), revision=s.revision, trust_remote_code=s.trust_remote_code)


def load_tokenizer(s: ModelSettings, **kwargs: Any) -> Any:
    """The tokenizer (`tokenizer`, else the model's), at `tokenizer_revision` else `revision`."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        (s.tokenizer or s.model).removeprefix("hf://"),
        revision=s.tokenizer_revision or s.revision,
        trust_remote_code=s.trust_remote_code,
        **kwargs,
    )


def torch_dtype(s: ModelSettings, device: str | None = None) -> str:
    """`dtype`, with `auto` as the CPU's fast dtype on a CPU and the model's own on a GPU.

    On a CPU, bf16 where it has bf16 instructions: all-MiniLM-L6-v2 embeds 845 vs 480 texts/s
    in batches of 64 (cosine >= 0.9999 with float32), SmolLM2 decodes ~2x faster.
    """
    on_cpu = device == "cpu" if device is not None else not has_gpu()
    if s.dtype == "auto" and on_cpu:
        return cpu_dtype()
    return s.dtype


def device(args: dict[str, Any] | None) -> str:
    """Where an instance's weights go: `cuda:<id>` for a GPU (or KIND_MODEL) instance on a GPU machine, else `cpu`.

    `args` are Triton's `initialize` arguments (None outside Triton: the first GPU), so each
    instance of a `KIND_GPU` group lands on the GPU Triton placed it on.
    """
    if not has_gpu():
        return "cpu"
    args = args or {}
    if str(args.get("model_instance_kind", "MODEL")).upper() not in ("GPU", "MODEL"):
        return "cpu"
    return f"cuda:{int(args.get('model_instance_device_id') or 0)}"


def load_model(auto_cls: Any, s: ModelSettings, device: str, **kwargs: Any) -> Any:
    """`auto_cls.from_pretrained` with the settings' revision, dtype and trust, in eval mode on `device`."""
    model = auto_cls.from_pretrained(
        model_id(s),
        revision=s.revision,
        dtype=torch_dtype(s, device),
        trust_remote_code=s.trust_remote_code,
        **kwargs,
    )
    model.eval()
    if device != "cpu":
        model.to(device)
    return model


def model_files(s: ModelSettings) -> FileReader:
    """Reads files of a local folder or, for a hub id, through huggingface_hub's cache."""
    local = Path(model_id(s))
    if local.is_dir():
        return lambda name: (local / name) if (local / name).is_file() else None

    def read(name: str) -> Path | None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            return Path(hf_hub_download(model_id(s), name, revision=s.revision))
        except EntryNotFoundError:
            return None

    return read
