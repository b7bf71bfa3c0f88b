"""create_app(settings, client): the FastAPI application, with no module globals.

The routers get Triton through `backend.Triton`, a dependency reading `app.state.triton`:
the gRPC client the app opens (and closes) itself, or the `client` given, which stays its
caller's (a test's fake: `create_app(client=fake)`).
"""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from openai_frontend import auth, errors, tracing
from openai_frontend.backend import ModelServer
from openai_frontend.cors import CORS
from openai_frontend.metrics import FrontendMetrics, MetricsMiddleware
from openai_frontend.middleware import BodyLimit, Drain, DrainGate, RequestId
from openai_frontend.request_log import RequestLog
from openai_frontend.routers import (
    chat,
    completions,
    embeddings,
    health,
    kserve,
    lora,
    model_control,
    models,
    pooling,
    rerank,
    tokenize,
)
from openai_frontend.routers import messages as messages_router
from openai_frontend.routers import responses as responses_router
from openai_frontend.serving.responses_state import ResponsesState
from openai_frontend.settings import Settings
from openai_frontend.triton_client import TritonClient


def _freeze_heap() -> None:
    """Leave the objects made at startup (FastAPI, pydantic, grpc: ~100k) out of the garbage
    collector's scans, as vLLM's API server does: a full collection over them took 30-200 ms on
    2 cores while streaming, a stall of every stream in flight (the ITL p99 at c=16)."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, client: ModelServer | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if client is not None:
            yield
            await app.state.responses.close()
            return
        # Opened here, in the server's event loop, which its gRPC channel belongs to.
        app.state.triton = TritonClient(settings.triton_url, settings.models_ttl_s)
        _freeze_heap()
        yield
        await app.state.responses.close()
        await app.state.triton.close()

    app = FastAPI(
        title="triton-llm OpenAI-compatible frontend",
        description="OpenAI's completions, chat, embeddings and models APIs over Triton Inference Server's gRPC API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = auth.Keys.from_settings(settings)
    app.state.triton = client
    app.state.metrics = FrontendMetrics()
    app.state.drain = Drain()  # begun by the server on SIGTERM (server.py)
    # The Responses API's store, opened on its first request, and its background responses.
    app.state.responses = ResponsesState(
        settings.responses_store, settings.responses_retention_s, settings.responses_max_bytes
    )
    errors.install(app)

    # KServe's v1 and v2 protocols, at the root and before the OpenAI routes (routers/kserve.py).
    app.include_router(kserve.probes)
    app.include_router(kserve.router)
    api = APIRouter(prefix=settings.route_prefix, dependencies=[Depends(auth.require_client)])
    routers = (completions.router, chat.router, embeddings.router, rerank.router, models.router, tokenize.router,
               responses_router.router, pooling.router)  # fmt: skip
    for router in routers:
        api.include_router(router)
    api.include_router(messages_router.router)  # Anthropic's Messages API
    app.include_router(api)
    # The operator's routes: the admin key's, a 404 without one (auth.py).
    control = APIRouter(prefix=settings.route_prefix, dependencies=[Depends(auth.require_admin)])
    control.include_router(model_control.router)
    control.include_router(lora.router)
    app.include_router(control)
    app.include_router(health.router)
    # The last added runs first: every response, a 413, a drain's 503 and a CORS preflight
    # included, is counted, logged and carries its id (and CORS headers); a request refused
    # while draining is not read. CORS and the request log are in the chain only when on.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(DrainGate, drain=app.state.drain)
    if settings.allowed_origins:
        app.add_middleware(CORS, settings=settings)
    if settings.log_requests or settings.log_prompts:
        app.add_middleware(
            RequestLog, route_prefix=settings.route_prefix, log_prompts=settings.log_prompts,
            max_log_len=settings.max_log_len,
        )  # fmt: skip
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, route_prefix=settings.route_prefix)
    app.add_middleware(RequestId)
    if tracing.configured():  # OTEL_* names an endpoint; outermost, so its span holds all of the above
        tracing.install_provider()
        app.add_middleware(tracing.TraceRequests, route_prefix=settings.route_prefix)
    return app
