"""The names a model is served under (model.json's `served_model_name`), told to the OpenAI frontend.

The frontend learns about a model from its Triton config only. Triton 2.51 keeps only the
inputs, outputs, batching and decoupled policy of what a Python model's `auto_complete_config`
sets (engines/vllm/lora.py says more), so each name is an optional input named ADVERTISED +
the name, which carries nothing, as the LoRA adapters are; openai_frontend.triton_client reads
the same prefix (docs/protocol.md#advertised-inputs). Generation and encoder models alike.
"""

from __future__ import annotations

from typing import Any

from triton_llm.settings import load_model_json

ADVERTISED = "served_model_name:"


def advertised_inputs(model_dir: str) -> list[dict[str, Any]]:
    """One optional input per name of model.json's `served_model_name`; none when model.json
    cannot be read or the key is malformed (`initialize` then fails the load, naming the key)."""
    try:
        value = load_model_json(model_dir).get("served_model_name")
    except (OSError, ValueError):
        return []
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    unique = dict.fromkeys(n for n in names if isinstance(n, str) and n)
    return [{"name": ADVERTISED + n, "data_type": "TYPE_BOOL", "dims": [1], "optional": True} for n in unique]
