"""LoRA adapters of a vLLM model: model.json's `lora_modules` as vLLM `LoRARequest`s, found by a request's `lora_name`.

As in vLLM's server, declared adapters are loaded when the engine starts (a bad path stops the
model's load), each keeping one integer id (its place in model.json, from 1, as in vllm_backend),
which is how vLLM's engine tells adapters apart in its batches. A model that allows it also takes
adapters at run time (`lora_control.py`): each gets the next id, never reused, so a request still
running on an unloaded adapter keeps its weights (`hold`/`release`: the engine forgets them once
the last such request is done).
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
        self._requests: dict[str, Any] = {}  # name -> LoRARequest: what a request may name now
        self._built = False
        self._next_id = len(self._paths) + 1
        self._held: dict[int, int] = {}  # int id -> requests running on it
        self._unloaded: set[int] = set()  # unloaded while held: the engine forgets them when released

    @property
    def names(self) -> list[str]:
        return list(self._requests) if self._built else list(self._paths)

    def requests(self) -> list[Any]:
        """One `LoRARequest` per declared adapter (built once: vLLM caches its loaded weights by the int id)."""
        if not self._built:
            self._built = True
            if self._paths:
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
        self.requests()
        if name not in self._requests:
            served = ", ".join(self.names) or "none (model.json lora_modules declares them)"
            raise InvalidInput(FIELD, f"unknown LoRA adapter {name!r}; this model's adapters: {served}")
        return self._requests[name]

    def known(self, name: str) -> bool:
        self.requests()
        return name in self._requests

    # -- run time (lora_control.py) ----------------------------------------------------

    def add(self, name: str, path: str) -> Any:
        """A new `LoRARequest` with the next id (vLLM's server counts them the same way)."""
        from vllm.lora.request import LoRARequest

        adapter = LoRARequest(lora_name=name, lora_int_id=self._next_id, lora_path=path)
        self._next_id += 1
        return adapter

    def publish(self, adapter: Any) -> None:
        """`adapter` is loaded in the engine: requests may name it from now on."""
        self._requests[adapter.lora_name] = adapter

    def withdraw(self, name: str) -> int | None:
        """No new request may name `name`; the id the engine may forget now, or None while requests hold it."""
        adapter = self._requests.pop(name)
        if self._held.get(adapter.lora_int_id):
            self._unloaded.add(adapter.lora_int_id)
            return None
        return adapter.lora_int_id

    def hold(self, adapter: Any) -> None:
        if adapter is not None:
            self._held[adapter.lora_int_id] = self._held.get(adapter.lora_int_id, 0) + 1

    def release(self, adapter: Any) -> int | None:
        """A request on `adapter` is done: the id the engine may forget now (unloaded, none left), else None."""
        if adapter is None:
            return None
        lora_id = adapter.lora_int_id
        self._held[lora_id] -= 1
        if self._held[lora_id]:
            return None
        del self._held[lora_id]
        if lora_id in self._unloaded:
            self._unloaded.discard(lora_id)
            return lora_id
        return None

    def loaded(self) -> int:
        """Adapters the engine holds: those a request may name and those unloaded but still running."""
        return len(self._requests) + len(self._unloaded)


# The OpenAI frontend lists a model's adapters from its Triton config. Triton 2.51 keeps only the
# inputs, outputs, batching and decoupled policy of what a Python model's auto_complete_config sets
# (TritonModel::UpdateModelConfig drops `parameters`), so each adapter is an optional input named
# ADVERTISED + its name that carries nothing; openai_frontend.triton_client reads the same prefix.
ADVERTISED = "lora_module:"
# A model that takes adapters at run time declares the control input (docs/protocol.md); one with a
# resolver also declares RESOLVER, which carries nothing: the frontend then routes unknown names to it.
CONTROL = "lora_control"
RESOLVER = "lora_resolver"


def advertised_inputs(model_dir: str) -> list[dict[str, Any]]:
    """The config inputs that name model.json's adapters, and the control inputs of a model that allows
    runtime adapters; none when model.json cannot be read (initialize says why)."""
    from triton_llm.settings import load_model_json

    try:
        raw = load_model_json(model_dir)
    except (OSError, ValueError):
        return []
    modules = raw.get("lora_modules") or []
    names = [m["name"] for m in modules if isinstance(m, dict) and isinstance(m.get("name"), str)]
    inputs = [{"name": ADVERTISED + n, "data_type": "TYPE_BOOL", "dims": [1], "optional": True} for n in names]
    if raw.get("allow_runtime_lora_updating") is True:
        inputs.append({"name": CONTROL, "data_type": "TYPE_STRING", "dims": [1], "optional": True})
        if isinstance(raw.get("lora_resolver"), str):
            inputs.append({"name": RESOLVER, "data_type": "TYPE_BOOL", "dims": [1], "optional": True})
    return inputs


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
