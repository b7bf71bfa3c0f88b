"""Triton's explicit model control for the control routes (serving/model_control.py): load and
unload a repository entry, and remember what the operator did, so that readiness leaves out
the models an operator is loading or has unloaded (serving/health.py) and requests to an
unloaded one are a 404 (ModelInfo.offline).

tritonserver runs with `--model-control-mode=explicit` (triton_llm/cli/tritonserver.py), as
serve's supervisor uses it to reload a dead model. A load returns once the model is READY.
Triton's unload returns at once and lets the requests in flight finish: `unload` waits for that
(up to UNLOAD_WAIT_S), and meanwhile TritonClient's watchdog leaves them alone (`unloading`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import tritonclient.grpc.aio as grpc_aio
from tritonclient.utils import InferenceServerException

from openai_frontend.errors import BadRequest, NotFound, from_triton

UNLOAD_WAIT_S = 300.0
POLL_S = 0.1


class RepositoryControl:
    def __init__(self, client: grpc_aio.InferenceServerClient, index: Callable[[], Awaitable[dict[str, str]]]):
        self._client, self._index = client, index  # index: each entry's state ("" never loaded)
        self.loading: set[str] = set()  # loads in flight
        self.unloading: set[str] = set()  # unloads in flight
        self.unloaded: set[str] = set()  # unloaded, or failed to load, through here

    @property
    def changing(self) -> set[str]:
        """The models with a load or an unload in flight through here."""
        return self.loading | self.unloading

    def offline(self, name: str, state: str) -> bool:
        """Not serving by choice: never loaded, or unloaded (or failed to load) through here."""
        return state != "READY" and (not state or name in self.unloaded)

    async def load(self, model: str) -> None:
        await self._require_entry(model)
        self.loading.add(model)
        try:
            await self._client.load_model(model)
        except InferenceServerException as exc:
            self.unloaded.add(model)  # out of readiness until a load succeeds
            message = f"model: '{model}' could not be loaded: {exc.message() or exc}"
            raise BadRequest(message, param="model", code="model_load_failed") from None
        finally:
            self.loading.discard(model)
        self.unloaded.discard(model)

    async def unload(self, model: str) -> None:
        await self._require_entry(model)
        self.unloaded.add(model)
        self.unloading.add(model)
        try:
            await self._client.unload_model(model)
            deadline = time.monotonic() + UNLOAD_WAIT_S
            while (await self._index()).get(model) == "UNLOADING" and time.monotonic() < deadline:
                await asyncio.sleep(POLL_S)
        except InferenceServerException as exc:
            raise from_triton(exc.message() or str(exc), str(exc.status() or "")) from None
        finally:
            self.unloading.discard(model)

    async def _require_entry(self, model: str) -> None:
        if model not in await self._index():
            raise NotFound(f"The model '{model}' is not in Triton's repository", param="model", code="model_not_found")
