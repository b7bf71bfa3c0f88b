"""GET /v1/models and /v1/models/{id}: the ready generation and embedding models in Triton's repository."""

from __future__ import annotations

from fastapi import APIRouter

from openai_frontend.backend import ModelInfo, Triton
from openai_frontend.errors import NotFound
from openai_frontend.schemas.models import Model, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(triton: Triton) -> ModelList:
    models = await triton.models()
    return ModelList(data=[Model(id=m.name, created=m.created) for m in models.values() if _listed(m)])


@router.get("/v1/models/{model_id:path}", response_model=Model)
async def get_model(model_id: str, triton: Triton) -> Model:
    info = (await triton.models()).get(model_id)
    if info is None or not _listed(info):
        raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return Model(id=info.name, created=info.created)


def _listed(info: ModelInfo) -> bool:
    return info.ready and (info.generate or info.embed)
