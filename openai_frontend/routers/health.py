"""GET /health (ready only when Triton and every model are) and GET /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from openai_frontend.backend import Triton
from openai_frontend.errors import APIError, ServiceUnavailable

router = APIRouter()


@router.get("/health")
async def health(triton: Triton) -> dict:
    if not await triton.server_ready():
        raise ServiceUnavailable(f"Triton at {triton.url} is not ready")
    try:
        models = await triton.models(refresh=True)
    except APIError as exc:
        raise ServiceUnavailable(exc.message) from None
    not_ready = sorted(name for name, m in models.items() if not m.ready)
    if not models or not_ready:
        raise ServiceUnavailable(f"models not ready: {', '.join(not_ready) or 'none loaded'}")
    return {"status": "ok", "models": sorted(models)}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
