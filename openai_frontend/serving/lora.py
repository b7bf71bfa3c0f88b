"""The runtime LoRA routes' answers: which model an adapter goes to, then one control request to it.

vLLM's checks and answers (`entrypoints/openai/models/serving.py`): a name taken by a served model
or adapter is a 400, unloading an unknown name a 404, success a plain-text line. The model checks
the path (inside its `lora_allowed_paths`), the adapter and what fits, each failure a 400 naming
the field. The answer lists the model's adapters as they are now, and the client's model list is
read again at once (triton_client: the control invalidates it), so /v1/models shows the change.
"""

from __future__ import annotations

from openai_frontend.backend import ModelInfo, ModelServer, find_model
from openai_frontend.errors import BadRequest, NotFound, ServiceUnavailable
from openai_frontend.schemas.lora import LoadLoraAdapterRequest, UnloadLoraAdapterRequest

_OPT_IN = "allow_runtime_lora_updating in its model.json"


async def load(triton: ModelServer, body: LoadLoraAdapterRequest) -> str:
    models = await triton.models(refresh=True)
    base = _base(models, body.model)
    if (owner := find_model(models, body.lora_name)) is not None:
        taken = "has already been loaded" if owner.lora_name is not None else "conflicts with a served base model"
        raise BadRequest(f"The lora adapter '{body.lora_name}' {taken}.", param="lora_name")
    command = {"action": "load", "lora_name": body.lora_name, "lora_path": body.lora_path}
    return (await triton.lora_control(base.name, command))["message"]


async def unload(triton: ModelServer, body: UnloadLoraAdapterRequest) -> str:
    models = await triton.models(refresh=True)
    if body.model is not None:
        holder = _base(models, body.model)
        holder = holder if body.lora_name in holder.adapters else None
    else:
        holder = next((m for m in models.values() if m.lora_control and body.lora_name in m.adapters), None)
    if holder is None:
        raise NotFound(f"The lora adapter '{body.lora_name}' cannot be found.", param="lora_name")
    return (await triton.lora_control(holder.name, {"action": "unload", "lora_name": body.lora_name}))["message"]


def _base(models: dict[str, ModelInfo], name: str | None) -> ModelInfo:
    """The model named `name`, or the only one taking adapters at run time; else an error naming `model`."""
    if name is not None:
        info = find_model(models, name)
        if info is None or info.lora_name is not None:
            raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
        if not info.lora_control:
            raise BadRequest(f"The model '{name}' takes no adapters at run time ({_OPT_IN})", param="model")
        if not info.ready:
            raise ServiceUnavailable(f"The model '{name}' is not ready")
        return info
    takers = sorted(m.name for m in models.values() if m.lora_control and m.ready)
    if len(takers) != 1:
        which = f"{len(takers)} do: {', '.join(takers)}" if takers else f"none does ({_OPT_IN})"
        raise BadRequest(f"model: is required when not exactly one model takes adapters at run time; {which}",
                         param="model")  # fmt: skip
    return models[takers[0]]
