"""POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's runtime LoRA routes), admin-keyed
(auth.require_admin: without an admin key they are a 404); serving/lora.py does the work."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from openai_frontend.auth import require_admin
from openai_frontend.backend import Triton
from openai_frontend.schemas.lora import LoadLoraAdapterRequest, UnloadLoraAdapterRequest
from openai_frontend.serving import lora

router = APIRouter(dependencies=[Depends(require_admin)])


@router.post("/v1/load_lora_adapter", response_class=PlainTextResponse)
async def load_lora_adapter(body: LoadLoraAdapterRequest, triton: Triton) -> str:
    return await lora.load(triton, body)


@router.post("/v1/unload_lora_adapter", response_class=PlainTextResponse)
async def unload_lora_adapter(body: UnloadLoraAdapterRequest, triton: Triton) -> str:
    return await lora.unload(triton, body)
