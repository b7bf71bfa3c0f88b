"""Generation engines behind one interface (`base.Engine`), chosen by model.json's `backend`."""

from __future__ import annotations

from typing import Any

from triton_llm.engines.base import Engine

BACKENDS = ("auto", "vllm")


def create_engine(settings: dict[str, Any]) -> Engine:
    backend = settings.get("backend", "auto")
    if backend not in BACKENDS:
        raise ValueError(f"model.json: backend must be one of {BACKENDS}, got {backend!r}")
    from triton_llm.engines.vllm_engine import VllmEngine

    return VllmEngine(settings)
