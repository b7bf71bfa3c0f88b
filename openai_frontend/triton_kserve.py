"""The calls KServe's v2 routes make of Triton over gRPC (serving/kserve_v2.py), beside
TritonClient's own: any model's plain inference, and server and model metadata. A mixin of
TritonClient: the same channel, and the same watchdog over requests in flight."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tritonclient.grpc import InferInput, InferResult
from tritonclient.utils import InferenceServerException

from openai_frontend.backend import Outputs
from openai_frontend.errors import from_triton


class KServeCalls:
    _client: Any  # tritonclient.grpc.aio.InferenceServerClient, TritonClient's
    _infer: Callable[..., Awaitable[InferResult]]  # TritonClient's watched call

    async def infer(self, model: str, inputs: list[InferInput], **options: Any) -> tuple[Outputs, str]:
        """One plain inference (KServe v2's `/infer`): the outputs and the version that answered.
        `options` are `tritonclient.grpc.aio`'s `infer` keywords (outputs, parameters, priority...)."""
        result = await self._infer(model, inputs, **options)
        response = result.get_response()
        return {o.name: result.as_numpy(o.name) for o in response.outputs}, response.model_version

    async def metadata(self, model: str = "", version: str = "") -> dict[str, Any]:
        """Triton's server metadata (no `model`), or a model's: names, datatypes, shapes as ints."""
        try:
            if not model:
                meta = await self._client.get_server_metadata()
                return {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}
            meta = await self._client.get_model_metadata(model, version)
        except InferenceServerException as exc:
            raise _map_error(exc) from None
        tensors = [
            [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in group]
            for group in (meta.inputs, meta.outputs)
        ]
        return {"name": meta.name, "versions": list(meta.versions), "platform": meta.platform,
                "inputs": tensors[0], "outputs": tensors[1]}  # fmt: skip

    async def model_ready(self, model: str, version: str = "") -> bool:
        try:
            return await self._client.is_model_ready(model, version)
        except InferenceServerException:
            return False


def _map_error(exc: InferenceServerException):
    return from_triton(exc.message() or str(exc), str(exc.status() or ""))
