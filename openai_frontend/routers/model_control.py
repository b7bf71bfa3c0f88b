"""POST /v1/models/{model}/load and /unload (serving/model_control.py), behind the admin key.

Mounted by app.create_app under `auth.require_admin`: without an admin key they answer the
404 of a route that does not exist. Left out of /openapi.json: they are the operator's, not
the OpenAI API that document describes. `{model:path}` so that a name holding a slash reaches
the check that refuses it (a 400 naming `model`), rather than no route.
"""

from __future__ import annotations

from fastapi import APIRouter

from openai_frontend.backend import Triton
from openai_frontend.schemas.models import Model
from openai_frontend.serving import model_control

router = APIRouter(include_in_schema=False)


@router.post("/v1/models/{model:path}/load", response_model=Model, response_model_exclude_none=True)
async def load_model(model: str, triton: Triton) -> Model:
    return await model_control.load(triton, model)


@router.post("/v1/models/{model:path}/unload")
async def unload_model(model: str, triton: Triton) -> dict[str, str]:
    return await model_control.unload(triton, model)
