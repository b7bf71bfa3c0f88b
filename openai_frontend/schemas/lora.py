"""vLLM's runtime LoRA requests (vLLM 0.32 `entrypoints/serve/lora/protocol.py`): the same fields,
plus `model`, ours: vLLM serves one model, and here several may take adapters at run time."""

from __future__ import annotations

from pydantic import Field, model_validator

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas.common import RequestModel


class LoadLoraAdapterRequest(RequestModel):
    lora_name: str = Field(min_length=1)
    lora_path: str = Field(min_length=1)
    # vLLM's: reloading an adapter in place is not offered here (unload it, then load it).
    load_inplace: bool = False
    is_3d_lora_weight: bool = False
    # Ours: the base model; left out, the one model that takes adapters at run time.
    model: str | None = None

    @model_validator(mode="after")
    def _supported(self):
        for name in ("load_inplace", "is_3d_lora_weight"):
            if getattr(self, name):
                raise FieldValueError(name, "is not supported here: unload the adapter, then load it")
        return self


class UnloadLoraAdapterRequest(RequestModel):
    lora_name: str = Field(min_length=1)
    lora_int_id: int | None = None  # vLLM's, which ignores it too: the name says which
    # Ours: the base model; left out, the model that serves the adapter.
    model: str | None = None
