"""/v1/models served: the ready generation, embedding and cross-encoder models in Triton's
repository, and their LoRA adapters (as vLLM lists them: id the adapter's name, parent the
model it applies to). The router only makes one call here."""

from __future__ import annotations

from openai_frontend.backend import ModelInfo, ModelServer, find_model
from openai_frontend.errors import NotFound
from openai_frontend.schemas.models import Model, ModelList


async def model_list(triton: ModelServer) -> ModelList:
    cards = []
    for m in (await triton.models()).values():
        if _listed(m):
            cards.append(Model(id=m.name, created=m.created))
            cards.extend(_card(m, adapter) for adapter in m.adapters)
    return ModelList(data=cards)


async def model_card(triton: ModelServer, model_id: str) -> Model:
    """One model's or adapter's card, or a 404 as for a model that is not served."""
    info = find_model(await triton.models(), model_id)
    if info is None or not _listed(info):
        raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return _card(info, info.lora_name)


def _card(info: ModelInfo, adapter: str | None) -> Model:
    if adapter is None:
        return Model(id=info.name, created=info.created)
    return Model(id=adapter, created=info.created, parent=info.name)


def _listed(info: ModelInfo) -> bool:
    return info.ready and (info.generate or info.embed or info.cross_encoder)
