"""The checks an adapter passes before vLLM's engine sees it at run time.

A path is a boundary: an operator's request must not read an arbitrary file, so a `lora_path`
must be inside one of model.json's `lora_allowed_paths` (none by default), symbolic links
resolved first. Then the folder must be a PEFT LoRA adapter whose rank fits `max_lora_rank`
and whose weights fit the base model's layers: vLLM checks the modules' names when it loads an
adapter, but a shape from another base model would fail only when a batch first uses it, inside
the engine's step, which ends the engine. Each failure is an InvalidInput naming the field.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from triton_llm.errors import InvalidInput

PATH = "lora_path"
ADAPTER_CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
# peft's names: `base_model.model.<module>.lora_A.weight` adapts `<module>.weight`.
PEFT_PREFIX = "base_model.model."


def inside_allowed(path: str, allowed: Sequence[str], field: str = PATH) -> Path:
    """`path` with its links resolved, when it lies inside one of `allowed`; else a 400 naming `field`."""
    real = Path(os.path.realpath(path))
    for root in allowed:
        if real.is_relative_to(os.path.realpath(root)):
            return real
    folders = ", ".join(allowed) or "none are set"
    raise InvalidInput(
        field, f"{path} is not inside a folder adapters may be loaded from (lora_allowed_paths: {folders})"
    )


def check_adapter(folder: Path, max_rank: int, base_model: str | None, field: str = PATH) -> None:
    """`folder` holds a LoRA adapter that this engine can load and apply; else a 400 naming `field`."""
    if not folder.is_dir():
        raise InvalidInput(field, f"{folder} is not a folder")
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except FileNotFoundError:
        raise InvalidInput(field, f"{folder} holds no {ADAPTER_CONFIG}: not a PEFT adapter") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(field, f"{folder / ADAPTER_CONFIG} cannot be read: {exc}") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise InvalidInput(field, f"{folder} is not a LoRA adapter (peft_type {config.get('peft_type')!r})")
    ranks = [config.get("r"), *(config.get("rank_pattern") or {}).values()]
    rank = max((r for r in ranks if isinstance(r, int)), default=0)
    if rank > max_rank:
        raise InvalidInput(field, f"the adapter's rank {rank} is above this model's max_lora_rank {max_rank}")
    weights = folder / WEIGHTS
    if not weights.is_file() and not (folder / "adapter_model.bin").is_file():
        raise InvalidInput(field, f"{folder} holds no adapter weights ({WEIGHTS})")
    if base_model is not None and weights.is_file():
        _check_shapes(weights, base_shapes(base_model), field)


def _check_shapes(weights: Path, base: dict[str, list[int]], field: str) -> None:
    """Each adapted layer's in and out sizes are the base model's (lora_A: [r, in], lora_B: [out, r])."""
    for name, shape in _header(weights).items():
        module, _, kind = name.removeprefix(PEFT_PREFIX).rpartition(".lora_")
        target = base.get(f"{module}.weight")
        if target is None or len(target) != 2 or len(shape) != 2:
            continue  # vLLM itself refuses modules it cannot adapt, when it loads the adapter
        size, want = (shape[1], target[1]) if kind.startswith("A") else (shape[0], target[0])
        if size != want:
            raise InvalidInput(
                field,
                f"the adapter does not fit this base model: {module} has size {want} here and {size} in the "
                "adapter (an adapter of another model?)",
            )


@lru_cache(maxsize=4)
def base_shapes(model_dir: str) -> dict[str, list[int]]:
    """The base model's weights' shapes, from its safetensors headers; empty when it has none here."""
    shapes: dict[str, list[int]] = {}
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        shapes.update(_header(file))
    return shapes


def _header(file: Path) -> dict[str, list[int]]:
    """A safetensors file's tensor shapes, from its header (8 bytes of length, then JSON): no weights read."""
    try:
        with file.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error):
        return {}
    return {k: v["shape"] for k, v in header.items() if isinstance(v, dict) and "shape" in v}
