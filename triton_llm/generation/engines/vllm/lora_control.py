"""LoRA adapters loaded, unloaded and resolved while a vLLM model serves (vLLM's runtime LoRA updating).

Off unless model.json sets `allow_runtime_lora_updating` (vLLM: VLLM_ALLOW_RUNTIME_LORA_UPDATING
for the whole server; here per model, since its `max_loras` and `max_lora_rank` bound what fits).
A control request is an inference request carrying the `lora_control` input, answered with no
generation (as `tokenize_only` is): JSON `{"action": "load", "lora_name", "lora_path"}`,
`{"action": "unload", "lora_name"}`, `{"action": "resolve", "lora_name"}` or `{"action": "list"}`.
The one response's `text_output` is JSON: `{"message", "adapters": [every name a request may use
now], "resolver": bool}`, which is how the frontend lists adapters (docs/protocol.md).

The engine's own calls do the work (`AsyncLLM.add_lora` / `remove_lora`). Unloading takes the
name away at once; requests already running on the adapter finish with it, and the engine
forgets its weights when the last one ends (vLLM's server never removes them at all; removing
them under a running request would have the worker reload them from the path at the next step).
A resolver (`lora_resolver`: a folder, or `hf://org/name[@revision]`) loads an unknown name on
first use from `<folder>/<name>`, as vLLM's filesystem resolver does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

from triton_llm.errors import InvalidInput, SettingError, json_object
from triton_llm.generation.engines.vllm.errors import describe
from triton_llm.generation.engines.vllm.lora import CONTROL, Adapters
from triton_llm.generation.engines.vllm.lora_checks import ADAPTER_CONFIG, PATH, check_adapter, inside_allowed
from triton_llm.settings import VllmSettings

logger = logging.getLogger(__name__)
NAME = "lora_name"
ACTIONS = ("load", "unload", "resolve", "list")
# A resolved name is one folder under the resolver's: no separators, no `..`.
RESOLVABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class LoraControl:
    def __init__(self, settings: VllmSettings, adapters: Adapters, enable_lora: Any):
        self.enabled = settings.allow_runtime_lora_updating
        for key in ("lora_allowed_paths", "lora_resolver"):
            if getattr(settings, key) and not self.enabled:
                raise SettingError(key, f"{key} needs allow_runtime_lora_updating: true")
        if self.enabled and enable_lora not in (True, "true"):
            raise SettingError("allow_runtime_lora_updating", "allow_runtime_lora_updating needs enable_lora: true")
        self.resolver = settings.lora_resolver
        local = self.resolver is not None and not self.resolver.startswith("hf://")
        self._allowed = [*(settings.lora_allowed_paths or []), *([self.resolver] if local else [])]
        if relative := next((f for f in self._allowed if not Path(f).is_absolute()), None):
            key = "lora_resolver" if relative == self.resolver else "lora_allowed_paths"
            raise SettingError(key, f"{key}: {relative!r} must be an absolute folder")
        self.adapters = adapters
        self._llm: Any = None
        self._max_rank = 0
        self._base: str | None = None  # the base model's folder, for the shapes check
        self._capacity: int | None = None
        self._lock = asyncio.Lock()  # one change at a time, as vLLM's per-name locks
        self._forgetting: set[asyncio.Task] = set()

    def started(self, llm: Any, model: str, capacity: int | None) -> None:
        """The engine is up: what bounds an adapter is known (vLLM's `max_lora_rank`, the slots)."""
        self._llm = llm
        lora_config = llm.vllm_config.lora_config
        self._max_rank = lora_config.max_lora_rank if lora_config is not None else 0
        self._base = model if Path(model).is_dir() else None
        self._capacity = capacity

    # -- requests ---------------------------------------------------------------------

    async def answer(self, raw: str) -> str:
        """A control request's answer (JSON), or an InvalidInput naming the field at fault."""
        if not self.enabled:
            raise InvalidInput(CONTROL, "this model takes no adapters at run time (allow_runtime_lora_updating)")
        command = json_object(raw, CONTROL)
        action = command.get("action")
        if action not in ACTIONS:
            raise InvalidInput("action", f"must be one of {', '.join(ACTIONS)}, got {json.dumps(action)}")
        async with self._lock:
            if action == "load":
                message = await self._load(_string(command, NAME), _string(command, PATH))
            elif action == "unload":
                message = await self._unload(_string(command, NAME))
            elif action == "resolve":
                found = await self._resolve(_string(command, NAME))
                message = "resolved" if found else "not found"
            else:
                message = "listed"
        return json.dumps({"message": message, "adapters": self.adapters.names, "resolver": self.resolver is not None})

    async def lookup(self, name: Any) -> Any:
        """A generation request's `LoRARequest` (None: the base model); an unknown name is resolved first."""
        if self.resolver is not None and isinstance(name, str) and not self.adapters.known(name):
            async with self._lock:
                await self._resolve(name)
        return self.adapters.request(name)

    def forget(self, lora_id: int) -> None:
        """The last request on an unloaded adapter ended: the engine drops its weights (in the background)."""
        task = asyncio.get_running_loop().create_task(self._remove(lora_id))
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    # -- the actions ------------------------------------------------------------------

    async def _load(self, name: str, path: str) -> str:
        if self.adapters.known(name):
            raise InvalidInput(NAME, f"The lora adapter '{name}' has already been loaded; unload it first.")
        await self._add(name, inside_allowed(path, self._allowed), PATH)
        return f"Success: LoRA adapter '{name}' added successfully."

    async def _unload(self, name: str) -> str:
        if not self.adapters.known(name):
            raise InvalidInput(NAME, f"The lora adapter '{name}' cannot be found.")
        if (lora_id := self.adapters.withdraw(name)) is not None:
            await self._remove(lora_id)
        else:
            logger.info("LoRA adapter '%s' unloaded; its running requests finish with it", name)
        return f"Success: LoRA adapter '{name}' removed successfully."

    async def _resolve(self, name: str) -> bool:
        """Load `name` from the resolver's folder when it holds it; False when it does not."""
        if self.adapters.known(name):
            return True
        if self.resolver is None or not RESOLVABLE.fullmatch(name):
            return False
        root = await self._resolver_root(name)
        if root is None or not (root / name / ADAPTER_CONFIG).is_file():
            return False
        folder = inside_allowed(str(root / name), [str(root)], NAME)  # a link out of it is refused
        await self._add(name, folder, NAME)
        logger.info("LoRA adapter '%s' resolved from %s", name, folder)
        return True

    async def _resolver_root(self, name: str) -> Path | None:
        assert self.resolver is not None
        if not self.resolver.startswith("hf://"):
            return Path(self.resolver)
        from triton_llm.cli.model_source import fetch

        repo, _, revision = self.resolver.partition("@")
        try:  # the repository at its revision (HF_TOKEN honoured); files already here are not fetched again
            folder, _ = await asyncio.to_thread(fetch, repo, revision or None, None)
        except (ValueError, OSError) as exc:
            raise InvalidInput(NAME, f"the LoRA resolver cannot read {self.resolver}: {exc}") from None
        return folder

    async def _add(self, name: str, folder: Path, field: str) -> None:
        if self._capacity is not None and self.adapters.loaded() >= self._capacity:
            raise InvalidInput(
                field,
                f"this model holds its limit of {self._capacity} adapters on a CPU (max_loras less the slot "
                "kept empty); unload one, or raise max_loras in model.json",
            )
        await asyncio.to_thread(check_adapter, folder, self._max_rank, self._base, field)
        adapter = self.adapters.add(name, str(folder))
        try:
            await self._llm.add_lora(adapter)
        except Exception as exc:
            if self._llm.errored:
                raise
            raise InvalidInput(field, f"vLLM could not load the adapter: {describe(exc)}") from None
        self.adapters.publish(adapter)
        logger.info("LoRA adapter '%s' loaded from %s (id %d)", name, folder, adapter.lora_int_id)

    async def _remove(self, lora_id: int) -> None:
        try:
            await self._llm.remove_lora(lora_id)
        except Exception:  # the engine may be dead; nothing is left to free then
            logger.warning("removing LoRA adapter %d failed", lora_id, exc_info=True)


def _string(command: dict[str, Any], key: str) -> str:
    value = command.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(key, f"is required: a non-empty string, got {json.dumps(value)}")
    return value
