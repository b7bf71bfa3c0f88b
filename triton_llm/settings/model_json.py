"""Reading model.json from a model's folder: relative paths resolved against it, vllm_backend's
multi_lora.json added. The object it returns is parsed into a settings class by `parse_settings`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from triton_llm.settings.common import MODEL_JSON
from triton_llm.settings.vllm import split_lora


def load_model_json(model_dir: str | os.PathLike) -> dict[str, Any]:
    """Read `<model_dir>/model.json`, resolving a relative local `model` or `tokenizer` path."""
    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it holds the engine settings (see docs/protocol.md)")
    try:
        settings = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(settings, dict) or "model" not in settings:
        raise ValueError(f"{path} must be a JSON object with at least a 'model' key")
    for key in ("model", "tokenizer", "chat_template"):
        value = settings.get(key)
        if key == "chat_template" and isinstance(value, str) and ("{{" in value or "{%" in value):
            continue  # the template itself
        if isinstance(value, str) and not value.startswith("hf://"):
            local = Path(model_dir) / value  # an absolute value stays as it is
            if value.startswith((".", "/")) or local.exists():
                settings[key] = str(local.resolve())
    _add_lora_modules(settings, Path(model_dir))
    return settings


MULTI_LORA_JSON = "multi_lora.json"


def _add_lora_modules(settings: dict[str, Any], model_dir: Path) -> None:
    """`lora_modules` with local paths resolved like `model`, plus vllm_backend's multi_lora.json
    ({name: path}) when `enable_lora` is on (vllm_backend reads it only then; it sends "true" as a string)."""
    modules = settings.get("lora_modules")
    if not isinstance(modules, (list, type(None))):
        return  # not a list: VllmSettings says so, naming the key
    modules = list(map(split_lora, modules or []))
    extra = model_dir / MULTI_LORA_JSON
    if settings.get("enable_lora") in (True, "true") and extra.is_file():
        try:
            named = json.loads(extra.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{extra} is not valid JSON: {exc}") from None
        if not isinstance(named, dict):
            raise ValueError(f"{extra} must be a JSON object of adapter names to paths")
        modules += [{"name": name, "path": path} for name, path in named.items()]
    for module in modules:
        path = module.get("path") if isinstance(module, dict) else None
        if isinstance(path, str) and (path.startswith(".") or (model_dir / path).exists()):
            module["path"] = str((model_dir / path).resolve())
    if modules:
        settings["lora_modules"] = modules
