"""GET /v1/models and /v1/models/{id} (serving/models.py lists the served models and adapters)."""

from __future__ import annotations

from fastapi import APIRouter

from openai_frontend.backend import Triton
from openai_frontend.schemas.models import Model, ModelList
from openai_frontend.serving import models

router = APIRouter()


@router.get("/v1/models", response_model=ModelList, response_model_exclude_none=True)  # `parent`: adapters only
async def list_models(triton: Triton) -> ModelList:
    return await models.model_list(triton)


@router.get("/v1/models/{model_id:path}", response_model=Model, response_model_exclude_none=True)
async def get_model(model_id: str, triton: Triton) -> Model:
    return await models.model_card(triton, model_id)
