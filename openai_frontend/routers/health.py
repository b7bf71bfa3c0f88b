"""Health probes and GET /metrics (Prometheus).

Two questions, two endpoints (Kubernetes asks them separately):
- GET /health/live: is this process serving? Answered without Triton, so that a slow or restarting
  Triton never gets the frontend killed by a liveness probe.
- GET /health/ready (and GET /health, its old name): are Triton and every model ready? Each Triton
  call is bounded by READY_TIMEOUT_S, so a probe during a burst answers 503 rather than hanging
  past the probe's own timeout.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from openai_frontend.backend import Triton
from openai_frontend.errors import APIError, ServiceUnavailable

# Well under the probes' timeoutSeconds (deploy/kserve) and Docker's HEALTHCHECK timeout.
READY_TIMEOUT_S = 2.0

router = APIRouter()


@router.get("/health/live")
async def live() -> dict:
    return {"status": "ok"}


@router.get("/health/ready")
@router.get("/health")
async def ready(triton: Triton) -> dict:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            if not await triton.server_ready():
                raise ServiceUnavailable(f"Triton at {triton.url} is not ready")
            models = await triton.models(refresh=True)
    except TimeoutError:
        raise ServiceUnavailable(f"Triton at {triton.url} did not answer within {READY_TIMEOUT_S:g} s") from None
    except APIError as exc:  # Triton unreachable, or an error reading its index (a 503 as it is)
        raise ServiceUnavailable(exc.message) from None
    not_ready = sorted(name for name, m in models.items() if not m.ready)
    if not models or not_ready:
        raise ServiceUnavailable(f"models not ready: {', '.join(not_ready) or 'none loaded'}")
    return {"status": "ok", "models": sorted(models)}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
