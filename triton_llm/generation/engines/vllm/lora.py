"""LoRA adapters of a vLLM model: model.json's `lora_modules` as vLLM `LoRARequest`s, found by a request's `lora_name`.

As in vLLM's server, adapters are declared up front and loaded when the engine starts (a bad
path stops the model's load), and each keeps one integer id (its place in model.json, from 1,
as in vllm_backend), which is how vLLM's engine tells adapters apart in its batches.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from triton_llm.errors import InvalidInput, SettingError
from triton_llm.settings import LoraModule

logger = logging.getLogger(__name__)
FIELD = "sampling_parameters.lora_name"


class Adapters:
    def __init__(self, modules: Sequence[LoraModule] = (), enable_lora: Any = None):
        if modules and enable_lora not in (True, "true"):
            # vLLM's server cannot load its --lora-modules without --enable-lora either.
            raise SettingError("lora_modules", "lora_modules needs enable_lora: true (vLLM's engine argument)")
        names = [m.name for m in modules]
        if duplicate := next((n for n in names if names.count(n) > 1), None):
            raise SettingError("lora_modules", f"the adapter name {duplicate!r} is declared twice")
        self._paths = {m.name: m.path for m in modules}
        self._requests: dict[str, Any] = {}

    @property
    def names(self) -> list[str]:
        return list(self._paths)

    def requests(self) -> list[Any]:
        """One `LoRARequest` per adapter (built once: vLLM caches its loaded weights by the int id)."""
        if not self._requests and self._paths:
            from vllm.lora.request import LoRARequest

            self._requests = {
                name: LoRARequest(lora_name=name, lora_int_id=i, lora_path=path)
                for i, (name, path) in enumerate(self._paths.items(), start=1)
            }
        return list(self._requests.values())

    def request(self, name: Any) -> Any:
        """The `LoRARequest` for a request's `lora_name` (None: the base model), or a 400 naming the field."""
        if name is None:
            return None
        if not isinstance(name, str):
            raise InvalidInput(FIELD, f"must be a string, got {json.dumps(name)}")
        if name not in self._paths:
            served = ", ".join(self._paths) or "none (model.json lora_modules declares them)"
            raise InvalidInput(FIELD, f"unknown LoRA adapter {name!r}; this model's adapters: {served}")
        self.requests()
        return self._requests[name]


# The OpenAI frontend lists a model's adapters from its Triton config. Triton 2.51 keeps only the
# inputs, outputs, batching and decoupled policy of what a Python model's auto_complete_config sets
# (TritonModel::UpdateModelConfig drops `parameters`), so each adapter is an optional input named
# ADVERTISED + its name that carries nothing; openai_frontend.triton_client reads the same prefix.
ADVERTISED = "lora_module:"


def advertised_inputs(model_dir: str) -> list[dict[str, Any]]:
    """The config inputs that name model.json's adapters; none when model.json cannot be read (initialize says why)."""
    from triton_llm.settings import load_model_json

    try:
        modules = load_model_json(model_dir).get("lora_modules") or []
    except (OSError, ValueError):
        return []
    names = [m["name"] for m in modules if isinstance(m, dict) and isinstance(m.get("name"), str)]
    return [{"name": ADVERTISED + n, "data_type": "TYPE_BOOL", "dims": [1], "optional": True} for n in names]


def keep_a_cpu_slot_empty(args: dict[str, Any], adapters: int) -> None:
    """One LoRA slot more than there are adapters, on a CPU: vLLM 0.32's CPU kernels
    (vllm/lora/ops/torch_ops) index the slots' weights with each row's slot, and a row without an
    adapter has slot -1, Python's last slot. Measured (vLLM's offline LLM too): in a batch with
    adapter requests, a request without `lora_name` got the adapter of the last slot. Slots fill
    from the first, so with one spare the last stays empty (zeros) and base rows stay base."""
    need = adapters + 1
    if args.get("max_loras", 1) < need:
        if "max_loras" in args:
            logger.warning(
                "max_loras %s raised to %s on this CPU (lora.keep_a_cpu_slot_empty)", args["max_loras"], need
            )
        args["max_loras"] = need
    if args.get("max_cpu_loras") is not None and args["max_cpu_loras"] < need:
        args["max_cpu_loras"] = need  # vLLM wants max_cpu_loras >= max_loras
