"""Runtime LoRA adapters as the frontend sees them: an unknown `model` tried on the models that
resolve adapter names (model.json's `lora_resolver`), as vLLM's server tries its resolvers.

Apart from backend.py so that routing stays one screen; the load and unload routes' answers are
in serving/lora.py. Each resolver model is asked in turn (by name) with a `resolve` control
request (docs/protocol.md); the first that loads the name serves it. None does: the caller's 404.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from openai_frontend.errors import InvalidField

if TYPE_CHECKING:
    from openai_frontend.backend import ModelInfo, ModelServer


async def resolve(server: ModelServer, name: str) -> ModelInfo | None:
    """The base model that has just loaded the adapter `name` (its `lora_name` set), or None."""
    resolvers = sorted((m for m in (await server.models()).values() if m.lora_resolver and m.ready), key=_name)
    for info in resolvers:
        try:
            answer = await server.lora_control(info.name, {"action": "resolve", "lora_name": name})
        except InvalidField as exc:  # found, but not loadable: the client's `model` names it
            problem = f"LoRA adapter '{name}' was found but could not be loaded: {exc.problem}"
            raise InvalidField("model", problem) from None
        if name in answer.get("adapters", ()):
            return dataclasses.replace(info, adapters=(*info.adapters, name), lora_name=name)
    return None


def _name(info: ModelInfo) -> str:
    return info.name
