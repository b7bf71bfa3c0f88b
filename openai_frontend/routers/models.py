"""GET /v1/models and /v1/models/{id}: the ready generation, embedding and cross-encoder models in Triton's repository,
and their LoRA adapters (as vLLM lists them: id the adapter's name, parent the model it applies to)."""

from __future__ import annotations

from fastapi import APIRouter

from openai_frontend.backend import ModelInfo, Triton, find_model
from openai_frontend.errors import NotFound
from openai_frontend.schemas.models import Model, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList, response_model_exclude_none=True)  # `parent`: adapters only
async def list_models(triton: Triton) -> ModelList:
    models = await triton.models()
    cards = []
    for m in models.values():
        if _listed(m):
            cards.append(Model(id=m.name, created=m.created))
            cards.extend(_card(m, adapter) for adapter in m.adapters)
    return ModelList(data=cards)


@router.get("/v1/models/{model_id:path}", response_model=Model, response_model_exclude_none=True)
async def get_model(model_id: str, triton: Triton) -> Model:
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
