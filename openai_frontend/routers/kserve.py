"""KServe's protocols on the frontend's port, at the root (KServe's clients call /v2/... and
/v1/models/...; the OpenAI routes are under KSERVE_OPENAI_ROUTE_PREFIX): v2 REST
(serving/kserve_v2.py) and v1 predict (serving/kserve_v1.py). Behind the client key, except
the v2 health probes and v1's `/`, which are as open as /health/*. Errors in KServe's shape (kserve_wire.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from openai_frontend import auth
from openai_frontend.backend import Triton
from openai_frontend.errors import ServiceUnavailable
from openai_frontend.kserve_wire import KServeRoute
from openai_frontend.middleware import DRAIN_RETRY_AFTER_S, request_id
from openai_frontend.schemas.kserve import InferenceRequest, PredictRequest
from openai_frontend.serving import kserve_v1, kserve_v2, models
from openai_frontend.serving.disconnect import cancel_on_disconnect

probes = APIRouter(route_class=KServeRoute)
router = APIRouter(route_class=KServeRoute, dependencies=[Depends(auth.require_client)])


# The JSON body of /infer, for /openapi.json (the route reads the raw body: JSON or binary).
def _inlined(schema: dict) -> dict:
    """`schema` with its `$defs` written in place of each `$ref` (openapi_extra has no components)."""
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)


_INFER_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": _inlined(InferenceRequest.model_json_schema())}}}}  # fmt: skip
_VERSIONED = {"include_in_schema": False}  # the same operation with a version: fuzzed once, unversioned


async def _body(request: Request) -> bytes:
    # A dependency: read before cancel_on_disconnect starts listening on the same receive channel.
    return await request.body()


@probes.get("/v2/health/live")
async def live() -> dict:
    return {"live": True}


@probes.get("/", include_in_schema=False)
async def v1_live() -> dict:  # KServe v1's liveness (its model server's `/`; InferenceRESTClient's v1 is_server_live)
    return {"status": "alive"}


@probes.get("/v2/health/ready")
async def ready(request: Request, triton: Triton) -> dict:
    if request.app.state.drain.draining:
        raise ServiceUnavailable("shutting down: draining the requests in flight", retry_after=DRAIN_RETRY_AFTER_S)
    return await kserve_v2.server_ready(triton)


@router.get("/v2")
async def server_metadata(triton: Triton) -> dict:
    return await kserve_v2.server_metadata(triton)


@router.get("/v2/models/{model_name}")
@router.get("/v2/models/{model_name}/versions/{version}", **_VERSIONED)
async def model_metadata(model_name: str, triton: Triton, version: str = "") -> dict:
    info = await kserve_v2.model(triton, model_name)
    return await triton.metadata(info.name, version)


@router.get("/v2/models/{model_name}/ready")
@router.get("/v2/models/{model_name}/versions/{version}/ready", **_VERSIONED)
async def model_ready(model_name: str, triton: Triton, version: str = "") -> dict:
    return await kserve_v2.model_ready(triton, model_name, version)


@router.post("/v2/models/{model_name}/infer", openapi_extra=_INFER_BODY)
@router.post("/v2/models/{model_name}/versions/{version}/infer", **_VERSIONED)
@cancel_on_disconnect
async def infer(model_name: str, request: Request, triton: Triton, body: bytes = Depends(_body),
                version: str = "") -> Response:  # fmt: skip
    info = await kserve_v2.model(triton, model_name)
    length = request.headers.get(kserve_v2.tensors.HEADER_LENGTH)
    return await kserve_v2.infer(triton, info, body, length, request_id(request), version)


@router.post("/v2/models/{model_name}/generate")
@router.post("/v2/models/{model_name}/versions/{version}/generate", **_VERSIONED)
@cancel_on_disconnect
async def generate(model_name: str, request: Request, triton: Triton, body: bytes = Depends(_body),
                   version: str = "") -> Response:  # fmt: skip
    info = await kserve_v2.model(triton, model_name)
    return await kserve_v2.generate(triton, info, body, request_id(request), version)


@router.post("/v2/models/{model_name}/generate_stream")
@router.post("/v2/models/{model_name}/versions/{version}/generate_stream", **_VERSIONED)
async def generate_stream(model_name: str, request: Request, triton: Triton, body: bytes = Depends(_body),
                          version: str = "") -> Response:  # fmt: skip
    info = await kserve_v2.model(triton, model_name)
    return await kserve_v2.generate_stream(triton, info, body, request_id(request), version)


@router.get("/v1/models/{model_name}")
async def v1_model(model_name: str, request: Request, triton: Triton) -> dict:
    info = await kserve_v2.model(triton, model_name) if request.app.state.settings.route_prefix else None
    if info is None:  # no OpenAI prefix: this is OpenAI's model card too (kserve_wire.py)
        card = (await models.model_card(triton, model_name)).model_dump(exclude_none=True)
        return {**card, "name": model_name, "ready": True}
    return {"name": model_name, "ready": info.ready}


@router.post("/v1/models/{model_name}:predict")
@cancel_on_disconnect
async def predict(model_name: str, body: PredictRequest, request: Request, triton: Triton) -> dict:
    info = await kserve_v2.model(triton, model_name)
    if not info.ready:
        raise ServiceUnavailable(f"Model with name {model_name} is not ready.")
    return await kserve_v1.predict(triton, info, body.texts, request_id(request))
