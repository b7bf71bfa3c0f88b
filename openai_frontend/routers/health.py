"""Health probes and GET /metrics (Prometheus); serving/health.py asks Triton.

Two questions, two endpoints (Kubernetes asks them separately):
- GET /health/live: is this process serving? Answered without Triton, so that a slow or restarting
  Triton never gets the frontend killed by a liveness probe. Stays 200 while draining.
- GET /health/ready (and GET /health, its old name): are Triton and every model ready? A 503 from
  the first SIGTERM on (the drain, server.py), and within `serving.health.READY_TIMEOUT_S`.

GET /metrics is the frontend's own metrics, then Triton's.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from openai_frontend.backend import Triton
from openai_frontend.errors import ServiceUnavailable
from openai_frontend.middleware import DRAIN_RETRY_AFTER_S
from openai_frontend.serving import health

router = APIRouter()


@router.get("/health/live")
async def live() -> dict:
    return {"status": "ok"}


@router.get("/health/ready")
@router.get("/health")
async def ready(request: Request, triton: Triton) -> dict:
    if request.app.state.drain.draining:
        raise ServiceUnavailable("shutting down: draining the requests in flight", retry_after=DRAIN_RETRY_AFTER_S)
    return await health.readiness(triton)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    text = await health.exposition(request.app.state.metrics.registry, request.app.state.settings.triton_metrics_url)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
