"""KServe's v2 inference protocol over REST, served on the frontend's port from Triton's gRPC
API (never its HTTP parser): server and model metadata and readiness, `/infer` (JSON tensors and
the binary tensor data extension: serving/kserve_tensors.py) and Triton's `generate` /
`generate_stream` extension. The models are Triton's, by their repository names.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi.responses import JSONResponse, Response, StreamingResponse
from tritonclient.grpc import InferRequestedOutput

from openai_frontend.backend import ModelInfo, ModelServer, Outputs
from openai_frontend.errors import APIError, BadRequest, NotFound, ServiceUnavailable
from openai_frontend.serving import kserve_tensors as tensors
from openai_frontend.serving.health import readiness

# The extensions of Triton's that this port serves (GET /v2 lists only these).
EXTENSIONS = ("binary_tensor_data", "parameters", "generate")


async def model(triton: ModelServer, name: str) -> ModelInfo:
    """The Triton model `name` (not an alias or an adapter: the v2 API names Triton's models)."""
    info = (await triton.models()).get(name) or (await triton.models(refresh=True)).get(name)
    if info is None or info.offline:
        raise NotFound(f"Request for unknown model: '{name}' is not found", param="model", code="model_not_found")
    return info


async def server_metadata(triton: ModelServer) -> dict[str, Any]:
    meta = await triton.metadata()
    return {**meta, "extensions": [e for e in meta["extensions"] if e in EXTENSIONS]}


async def server_ready(triton: ModelServer) -> dict[str, Any]:
    await readiness(triton)  # Triton and every served model, as /health/ready (503 otherwise)
    return {"ready": True}


async def model_ready(triton: ModelServer, name: str, version: str) -> dict[str, Any]:
    info = await model(triton, name)
    if not info.ready or not await triton.model_ready(name, version):
        raise ServiceUnavailable(f"Model with name {name} is not ready.")
    return {"name": name, "ready": True}


async def infer(triton: ModelServer, info: ModelInfo, body: bytes, header_length: str | None,
                rid: str, version: str) -> Response:  # fmt: skip
    request, arrays = tensors.parse_request(body, header_length)
    options = tensors.arguments(request.parameters)
    binary_default = bool((request.parameters or {}).get("binary_data_output", False))
    wanted: dict[str, bool] = {}
    if request.outputs is not None:
        for out in request.outputs:
            binary = out.parameters.binary_data if out.parameters and out.parameters.binary_data is not None else None
            wanted[out.name] = binary_default if binary is None else binary
        options["outputs"] = [InferRequestedOutput(name) for name in wanted]
    inputs = [tensors.infer_input(t, a) for t, a in zip(request.inputs, arrays, strict=True)]
    outputs, served = await triton.infer(
        info.name, inputs, model_version=version, request_id=request.id or rid, **options
    )
    entries, chunks = [], []
    for name, array in outputs.items():
        entry, data = tensors.output(name, array, wanted.get(name, binary_default))
        entries.append(entry)
        chunks.append(data)
    answer: dict[str, Any] = {"model_name": info.name, "model_version": served or version or "1"}
    if request.id is not None:
        answer["id"] = request.id
    answer["outputs"] = entries
    header = json.dumps(answer).encode()
    if not any(chunks):
        return Response(header, media_type="application/json")
    return Response(header + b"".join(chunks), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})  # fmt: skip


async def generate_inputs(triton: ModelServer, info: ModelInfo, body: bytes, version: str):
    """(tensors by input name, the request's `parameters` for stream_infer) of a generate request: each top-level field
    names an input (its datatype and shape from the model's metadata), `parameters` the rest."""
    data = tensors.load_json(body)
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object of input names and values")
    parameters = data.pop("parameters", None)
    if parameters is not None and (
        not isinstance(parameters, dict) or any(isinstance(v, (dict, list)) or v is None for v in parameters.values())
    ):
        raise BadRequest("parameters: must be an object of booleans, numbers and strings", param="parameters")
    options = tensors.arguments(parameters)
    if set(options) - {"parameters"}:
        key = sorted(set(options) - {"parameters"})[0]
        raise BadRequest(f"parameters.{key}: is not taken by generate", param=f"parameters.{key}")
    specs = {t["name"]: t for t in (await triton.metadata(info.name, version))["inputs"]}
    values: dict[str, np.ndarray] = {}
    for name, value in data.items():
        spec = specs.get(name)
        if spec is None:
            raise BadRequest(f"{name}: is not an input of the model '{info.name}' (its inputs: {sorted(specs)})",
                             param=name)  # fmt: skip
        flat = value if isinstance(value, list) else [value]
        fixed = [d for d in spec["shape"][1 if info.max_batch_size > 0 else 0 :]]
        shape = fixed if all(d > 0 for d in fixed) and int(np.prod(fixed)) == len(flat) else [len(flat)]
        shape = [1, *shape] if info.max_batch_size > 0 else shape
        values[name] = tensors.from_json(flat, spec["datatype"], shape, name)
    return values, ({"parameters": options["parameters"]} if "parameters" in options else {})


def _event_body(info: ModelInfo, version: str, outputs: Outputs) -> dict[str, Any]:
    body: dict[str, Any] = {"model_name": info.name, "model_version": version or "1"}
    for name, array in outputs.items():
        flat = tensors.values(array)
        body[name] = flat[0] if len(flat) == 1 else flat
    return body


async def generate(triton: ModelServer, info: ModelInfo, body: bytes, rid: str, version: str) -> JSONResponse:
    values, extra = await generate_inputs(triton, info, body, version)
    responses = [o async for o in triton.generate(info.name, values, rid, **extra)]
    if len(responses) != 1:
        raise BadRequest(f"The model sent {len(responses)} responses to this request: use generate_stream")
    return JSONResponse(_event_body(info, version, responses[0]))


async def generate_stream(triton: ModelServer, info: ModelInfo, body: bytes, rid: str, version: str):
    values, extra = await generate_inputs(triton, info, body, version)
    chunks = triton.generate(info.name, values, rid, **extra)
    try:  # the model's refusal of the request is the response's status, as for generate
        first = await anext(chunks, None)
    except BaseException:
        await chunks.aclose()
        raise

    async def events() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield f"data: {json.dumps(_event_body(info, version, first))}\n\n".encode()
            async for outputs in chunks:
                yield f"data: {json.dumps(_event_body(info, version, outputs))}\n\n".encode()
        except APIError as exc:  # after the 200 went out: Triton's SSE error event
            yield f"data: {json.dumps({'error': exc.message})}\n\n".encode()
        finally:
            await chunks.aclose()

    return StreamingResponse(events(), media_type="text/event-stream")
