"""Readiness and the metrics exposition, served for routers/health.py.

Readiness asks Triton whether it and every model are ready, each call bounded by
READY_TIMEOUT_S, so that a probe during a burst answers 503 rather than hanging past the
probe's own timeout. A model an operator is loading, or has unloaded, through the control
routes (or never loaded) is left out rather than making the pod unready: the others still
serve, and a load of minutes must not take the pod out of its Service (ModelInfo.offline,
.changing). Triton's own readiness is strict, false while any model loads or unloads, so it is
overruled while an operator's load or unload is in flight; the models are still checked one by
one. A model that stops by itself (serve reloading a dead one) still makes it 503.
The metrics are the frontend's own, then Triton's (`triton_metrics_url`, fetched within
METRICS_TIMEOUT_S), so that one scrape of the one exposed port sees both:
Triton's metrics port listens on loopback only.
"""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client import CollectorRegistry, generate_latest

from openai_frontend.backend import ModelServer
from openai_frontend.errors import APIError, ServiceUnavailable

# Well under the probes' timeoutSeconds (deploy/kserve) and Docker's HEALTHCHECK timeout.
READY_TIMEOUT_S = 2.0
METRICS_TIMEOUT_S = 2.0


async def readiness(triton: ModelServer) -> dict:
    """{"status": "ok", "models": [...]}, or a 503 saying what is not ready."""
    try:
        # wait_for, not asyncio.timeout: the images' Python may be 3.10.
        return await asyncio.wait_for(_ask_triton(triton), READY_TIMEOUT_S)
    except (TimeoutError, asyncio.TimeoutError):
        raise ServiceUnavailable(f"Triton at {triton.url} did not answer within {READY_TIMEOUT_S:g} s") from None
    except APIError as exc:  # Triton unreachable, or an error reading its index (a 503 as it is)
        raise ServiceUnavailable(exc.message) from None


async def _ask_triton(triton: ModelServer) -> dict:
    ready = await triton.server_ready()
    models = await triton.models(refresh=True)
    if not ready and not any(m.changing for m in models.values()):
        # An operator's load or unload may have ended between the two questions: Triton's
        # "not ready" was then about it, and asking again tells.
        ready = await triton.server_ready()
    if not ready and not any(m.changing for m in models.values()):
        raise ServiceUnavailable(f"Triton at {triton.url} is not ready")
    not_ready = sorted(name for name, m in models.items() if not (m.ready or m.offline or m.changing))
    serving = sorted(name for name, m in models.items() if m.ready)
    if not serving or not_ready:
        raise ServiceUnavailable(f"models not ready: {', '.join(not_ready) or 'none loaded'}")
    return {"status": "ok", "models": serving}


async def exposition(registry: CollectorRegistry, triton_metrics_url: str | None) -> bytes:
    """The frontend's metrics, then Triton's when it has a URL."""
    own = generate_latest(registry)
    if triton_metrics_url:
        own += await asyncio.to_thread(_triton_metrics, triton_metrics_url)
    return own


def _triton_metrics(url: str) -> bytes:
    """Triton's exposition, or a comment saying why there is none (a scrape never fails for it)."""
    try:
        with urllib.request.urlopen(url, timeout=METRICS_TIMEOUT_S) as r:
            text = r.read()
    except OSError as exc:
        reason = str(exc).replace("\n", " ")
        return f"# Triton's metrics at {url} are unavailable: {reason}\n".encode()
    return text if text.endswith(b"\n") or not text else text + b"\n"
