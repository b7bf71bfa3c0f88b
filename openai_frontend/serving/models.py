"""/v1/models served: the ready generation, embedding and cross-encoder models in Triton's
repository, each under its names (model.json's `served_model_name`, else its Triton name: vLLM
lists each served name), and their LoRA adapters (as vLLM lists them: id the adapter's name,
parent the model's first name). The router only makes one call here."""

from __future__ import annotations

from openai_frontend.backend import ModelInfo, ModelServer, find_model
from openai_frontend.errors import NotFound
from openai_frontend.schemas.models import Model, ModelList


async def model_list(triton: ModelServer) -> ModelList:
    cards = []
    for m in (await triton.models()).values():
        if _listed(m):
            cards.extend(Model(id=name, created=m.created) for name in m.names)
            cards.extend(_adapter_card(m, adapter) for adapter in m.adapters)
    return ModelList(data=cards)


async def model_card(triton: ModelServer, model_id: str) -> Model:
    """One model's or adapter's card, or a 404 as for a model that is not served."""
    info = find_model(await triton.models(), model_id)
    if info is None or not _listed(info):
        raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    if info.lora_name is None:
        return Model(id=model_id, created=info.created)  # its Triton name or an alias, as asked
    return _adapter_card(info, info.lora_name)


def _adapter_card(info: ModelInfo, adapter: str) -> Model:
    return Model(id=adapter, created=info.created, parent=info.names[0])


def _listed(info: ModelInfo) -> bool:
    return info.ready and (info.generate or info.embed or info.cross_encoder)
