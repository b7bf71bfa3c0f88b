"""Health probes and GET /metrics (Prometheus).

Two questions, two endpoints (Kubernetes asks them separately):
- GET /health/live: is this process serving? Answered without Triton, so that a slow or restarting
  Triton never gets the frontend killed by a liveness probe. Stays 200 while draining.
- GET /health/ready (and GET /health, its old name): are Triton and every model ready? A 503 from
  the first SIGTERM on (the drain, server.py). Each Triton call is bounded by READY_TIMEOUT_S, so
  a probe during a burst answers 503 rather than hanging past the probe's own timeout.

GET /metrics is the frontend's own metrics, then Triton's (`triton_metrics_url`, fetched within
METRICS_TIMEOUT_S), so that one scrape of the one exposed port sees both: Triton's metrics port
listens on loopback only.
"""

from __future__ import annotations

import asyncio
import urllib.request

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from openai_frontend.backend import Triton
from openai_frontend.errors import APIError, ServiceUnavailable
from openai_frontend.middleware import DRAIN_RETRY_AFTER_S

# Well under the probes' timeoutSeconds (deploy/kserve) and Docker's HEALTHCHECK timeout.
READY_TIMEOUT_S = 2.0
METRICS_TIMEOUT_S = 2.0

router = APIRouter()


@router.get("/health/live")
async def live() -> dict:
    return {"status": "ok"}


@router.get("/health/ready")
@router.get("/health")
async def ready(request: Request, triton: Triton) -> dict:
    if request.app.state.drain.draining:
        raise ServiceUnavailable("shutting down: draining the requests in flight", retry_after=DRAIN_RETRY_AFTER_S)
    try:
        # wait_for, not asyncio.timeout: the images' Python may be 3.10.
        return await asyncio.wait_for(_ask_triton(triton), READY_TIMEOUT_S)
    except (TimeoutError, asyncio.TimeoutError):
        raise ServiceUnavailable(f"Triton at {triton.url} did not answer within {READY_TIMEOUT_S:g} s") from None
    except APIError as exc:  # Triton unreachable, or an error reading its index (a 503 as it is)
        raise ServiceUnavailable(exc.message) from None


async def _ask_triton(triton) -> dict:
    if not await triton.server_ready():
        raise ServiceUnavailable(f"Triton at {triton.url} is not ready")
    models = await triton.models(refresh=True)
    not_ready = sorted(name for name, m in models.items() if not m.ready)
    if not models or not_ready:
        raise ServiceUnavailable(f"models not ready: {', '.join(not_ready) or 'none loaded'}")
    return {"status": "ok", "models": sorted(models)}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    own = generate_latest(request.app.state.metrics.registry)
    url = request.app.state.settings.triton_metrics_url
    if url:
        own += await asyncio.to_thread(_triton_metrics, url)
    return Response(own, media_type=CONTENT_TYPE_LATEST)


def _triton_metrics(url: str) -> bytes:
    """Triton's exposition, or a comment saying why there is none (a scrape never fails for it)."""
    try:
        with urllib.request.urlopen(url, timeout=METRICS_TIMEOUT_S) as r:
            text = r.read()
    except OSError as exc:
        reason = str(exc).replace("\n", " ")
        return f"# Triton's metrics at {url} are unavailable: {reason}\n".encode()
    return text if text.endswith(b"\n") or not text else text + b"\n"
