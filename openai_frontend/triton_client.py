"""Triton over gRPC (`tritonclient.grpc.aio`): model discovery, streamed generation, embeddings.

One channel for the process; one `stream_infer` call per generation request, so that a client that
goes away cancels exactly its own gRPC stream, which Triton turns into `is_cancelled()` in the model
and an engine abort. Embeddings are plain `infer` calls to a model Triton batches dynamically.
Implements `backend.ModelServer`, what the routers use.

A model whose process dies never answers the requests it held (Triton keeps them open). While requests
are in flight, a watchdog reads Triton's model index every WATCH_S; a request whose model is no longer
READY (serve unloads it to reload it) ends with a 503 at once, unless an operator is unloading it
(`unload_model`, repository_control.py): Triton lets those finish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc.aio as grpc_aio
from tritonclient.grpc import InferInput, InferResult
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from openai_frontend import tracing
from openai_frontend.backend import ModelInfo, Outputs, drop_colliding_names
from openai_frontend.errors import APIError, ServiceUnavailable, from_triton
from openai_frontend.repository_control import RepositoryControl
from openai_frontend.triton_kserve import KServeCalls

logger = logging.getLogger(__name__)
WATCH_S = 1.0
# A model's LoRA adapters and served names are optional inputs named so in its config
# (engines/vllm/lora.ADVERTISED says why; triton_llm/served_names.py).
LORA_INPUT = "lora_module:"
# A model taking adapters at run time declares the control input; one resolving unknown names, the marker.
LORA_CONTROL, LORA_RESOLVER = "lora_control", "lora_resolver"
ALIAS_INPUT = "served_model_name:"


class _InFlight:
    """A request on `model`; the watchdog calls `end` if the model stops under it."""

    def __init__(self, model: str, cancel: Callable[[], object]):
        self.model, self._cancel = model, cancel
        self.lost: str | None = None

    def end(self, state: str) -> None:
        self.lost = f"The model '{self.model}' stopped while serving this request ({state}); retry"
        self._cancel()

    def error(self) -> ServiceUnavailable | None:
        return None if self.lost is None else ServiceUnavailable(self.lost)


class TritonClient(KServeCalls):
    def __init__(self, url: str, models_ttl_s: float = 5.0):
        self.url = url
        self._client = grpc_aio.InferenceServerClient(url)
        self._ttl = models_ttl_s
        self._models: dict[str, ModelInfo] = {}
        self._models_at = 0.0
        self._lock = asyncio.Lock()
        self._inflight: dict[str, set[_InFlight]] = defaultdict(set)
        self._watchdog: asyncio.Task | None = None
        self._control = RepositoryControl(self._client, self._index)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self._client.close()

    def _track(self, model: str, cancel: Callable[[], object]) -> _InFlight:
        request = _InFlight(model, cancel)
        self._inflight[model].add(request)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch())
        return request

    def _untrack(self, request: _InFlight) -> None:
        requests = self._inflight[request.model]
        requests.discard(request)
        if not requests:
            del self._inflight[request.model]

    async def _watch(self) -> None:
        while self._inflight:
            await asyncio.sleep(WATCH_S)
            try:
                index = await self._client.get_model_repository_index(as_json=True)
            except InferenceServerException:
                continue  # Triton itself is gone: the requests' own calls fail
            states = {m["name"]: m.get("state", "") for m in index.get("models", [])}
            for model in list(self._inflight):
                if model in self._control.unloading:
                    continue
                if (state := states.get(model, "UNAVAILABLE")) != "READY":
                    for request in list(self._inflight.get(model, ())):
                        request.end(state)

    async def server_ready(self) -> bool:
        try:
            return await self._client.is_server_ready()
        except InferenceServerException:
            return False

    async def models(self, refresh: bool = False) -> dict[str, ModelInfo]:
        """Models in Triton's repository, cached for a few seconds."""
        async with self._lock:
            if refresh or time.monotonic() - self._models_at > self._ttl:
                self._models = await self._read_models()
                self._models_at = time.monotonic()
            return self._models

    async def _index(self) -> dict[str, str]:
        """Each repository entry's state: READY, LOADING, UNLOADING, UNAVAILABLE, "" (never loaded)."""
        try:
            index = await self._client.get_model_repository_index(as_json=True)
        except InferenceServerException as exc:
            raise ServiceUnavailable(f"Triton at {self.url} is unreachable: {exc.message()}") from None
        return {entry["name"]: entry.get("state", "") for entry in index.get("models", [])}

    async def _read_models(self) -> dict[str, ModelInfo]:
        models = {}
        # An operator's load may end while the index is read: its LOADING state in the answer
        # is still the operator's, so what was changing before the read counts as well.
        changing_before = set(self._control.changing)
        for name, state in (await self._index()).items():
            ready = state == "READY"
            config: dict[str, Any] = {}
            if ready:
                try:
                    config = (await self._client.get_model_config(name, as_json=True))["config"]
                except InferenceServerException:
                    ready = False
            inputs = {i["name"]: None for i in config.get("input", [])}  # a set in the config's order
            outputs = {o["name"] for o in config.get("output", [])}
            generate = "text_input" in inputs and "text_output" in outputs
            models[name] = ModelInfo(
                name=name,
                ready=ready,
                generate=generate,
                chat=generate and "messages" in inputs,
                embed="text_input" in inputs and "embedding" in outputs,
                created=int(time.time()),
                cross_encoder="text_pair" in inputs and "score" in outputs,
                max_batch_size=int(config.get("max_batch_size", 0)),
                sparse_outputs="sparse_outputs" in inputs,
                inputs=frozenset(inputs),
                outputs=frozenset(outputs),
                adapters=await self._adapters(name, inputs) if ready else (),
                lora_control=LORA_CONTROL in inputs,
                lora_resolver=LORA_RESOLVER in inputs,
                aliases=tuple(n.removeprefix(ALIAS_INPUT) for n in inputs if n.startswith(ALIAS_INPUT)),
                offline=self._control.offline(name, state),
                changing=not ready and name in changing_before | self._control.changing,
            )
        drop_colliding_names(models)
        return models

    async def _adapters(self, model: str, inputs: dict[str, None]) -> tuple[str, ...]:
        """A model's LoRA adapters: those its config names, or, taking adapters at run time, its list now."""
        declared = tuple(n.removeprefix(LORA_INPUT) for n in inputs if n.startswith(LORA_INPUT))
        if LORA_CONTROL not in inputs:
            return declared
        try:
            return tuple((await self.lora_control(model, {"action": "list"}, changes=False))["adapters"])
        except APIError as exc:
            logger.warning("%s: its LoRA adapters could not be listed (%s); listing those it declares", model, exc)
            return declared

    async def lora_control(self, model: str, command: dict[str, Any], changes: bool = True) -> dict[str, Any]:
        """A runtime-LoRA control request (docs/protocol.md: `lora_control`): the model's JSON answer.
        A change makes the next `models()` read Triton again, so the adapters listed follow at once."""
        answer = b"{}"
        try:
            async for outputs in self.generate(model, {LORA_CONTROL: json.dumps(command)}):
                answer = outputs["text_output"][0]
        finally:
            if changes:
                self._models_at = 0.0
        return json.loads(answer)

    async def load_model(self, model: str) -> None:
        self._models_at = 0.0  # read afresh while it loads (it is `loading`), and after
        try:
            await self._control.load(model)
        finally:
            self._models_at = 0.0

    async def unload_model(self, model: str) -> None:
        self._models_at = 0.0
        try:
            await self._control.unload(model)
        finally:
            self._models_at = 0.0

    async def generate(self, model: str, values: dict, request_id: str = "", **extra) -> AsyncIterator[Outputs]:
        """Stream the responses of one request; leaving early cancels it in Triton. `extra`: more of
        the request's keys for `stream_infer` (KServe v2's `generate` sends its `parameters`)."""
        finished = asyncio.Event()

        async def requests():
            yield {"model_name": model, "inputs": _inputs(values), "request_id": request_id,
                   "enable_empty_final_response": True, **extra}  # fmt: skip
            # Keep our side of the stream open until the last response is in.
            await finished.wait()

        stream = self._client.stream_infer(requests(), headers=tracing.triton_headers(model))  # None: not traced
        done = False
        inflight = self._track(model, stream.cancel)
        try:
            async for result, error in stream:
                if error is not None:
                    done = True
                    raise _map_error(error)
                response = result.get_response()
                done = response.parameters["triton_final_response"].bool_param
                outputs = {o.name: result.as_numpy(o.name) for o in response.outputs}
                if outputs:
                    yield outputs
                if done:
                    return
            raise inflight.error() or ServiceUnavailable("Triton closed the stream before the last response")
        except asyncio.CancelledError:  # the watchdog's cancel of the gRPC call, or our caller's
            if (lost := inflight.error()) is None:
                raise
            raise lost from None
        except InferenceServerException as exc:
            raise inflight.error() or _map_error(exc) from None
        except grpc.aio.AioRpcError as exc:  # the connection itself broke: tritonclient passes it on as it is
            reason = f"Triton's stream broke ({exc.code().name}: {exc.details()})"
            raise inflight.error() or ServiceUnavailable(reason) from None
        finally:
            self._untrack(inflight)
            finished.set()
            if not done:
                stream.cancel()

    async def embed(
        self,
        model: str,
        texts: list[str],
        parameters: dict[str, Any],
        request_id: str = "",
        *,
        pairs: list[str] | None = None,
    ) -> Outputs:
        """One request to an encoder model: its texts as the batch dimension (with `pairs`, a
        cross-encoder's second text of each row, `text_pair`)."""
        tensors = [_texts("text_input", texts)] + ([] if pairs is None else [_texts("text_pair", pairs)])
        result = await self._infer(model, tensors, request_id=request_id, parameters=parameters or None)
        return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}

    async def _infer(self, model: str, inputs: list[InferInput], **options: Any) -> InferResult:
        """One plain inference, watched like a stream (`_track`): `options` are `grpc.aio`'s `infer` keywords."""
        headers = tracing.triton_headers(model)  # None unless this request is traced
        call = asyncio.ensure_future(self._client.infer(model, inputs, headers=headers, **options))
        inflight = self._track(model, call.cancel)
        try:
            return await call
        except asyncio.CancelledError:
            call.cancel()  # our caller left: so does the call
            if (lost := inflight.error()) is None:
                raise
            raise lost from None
        except InferenceServerException as exc:
            raise _map_error(exc) from None
        finally:
            self._untrack(inflight)


def _texts(name: str, texts: list[str]) -> InferInput:
    tensor = InferInput(name, [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_))
    return tensor


def _inputs(values: dict[str, Any]) -> list[InferInput]:
    tensors = []
    for name, value in values.items():
        if isinstance(value, bool):
            tensor = InferInput(name, [1], "BOOL")
            tensor.set_data_from_numpy(np.array([value], dtype=np.bool_))
        elif isinstance(value, np.ndarray):  # token ids (`input_ids`)
            tensor = InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
            tensor.set_data_from_numpy(value)
        else:
            if not isinstance(value, str):
                value = json.dumps(value)
            tensor = InferInput(name, [1], "BYTES")
            tensor.set_data_from_numpy(np.array([value.encode("utf-8")], dtype=np.object_))
        tensors.append(tensor)
    return tensors


def _map_error(exc: InferenceServerException) -> APIError:
    return from_triton(exc.message() or str(exc), str(exc.status() or ""))
