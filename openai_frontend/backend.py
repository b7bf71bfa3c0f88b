"""What the routers need from Triton, as a `typing.Protocol`, and the FastAPI dependency that
hands it to them.

`triton_client.TritonClient` (gRPC) is the implementation; a test hands `create_app` a fake
that implements the same few methods. Implementations raise `openai_frontend.errors`
errors, Triton's decoded by `errors.from_triton`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import Depends, Request

from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import BadRequest, NotFound, ServiceUnavailable
from openai_frontend.request_log import note_model

logger = logging.getLogger(__name__)
Outputs = dict[str, np.ndarray]


@dataclass
class ModelInfo:
    name: str
    ready: bool
    generate: bool  # speaks our tensor protocol (text_input -> text_output)
    chat: bool  # also takes `messages` (server-side chat template)
    embed: bool  # an embedding model (text_input -> embedding)
    created: int
    cross_encoder: bool = False  # scores pairs (text_input + text_pair -> score): rerank and score
    max_batch_size: int = 0  # texts per request to an embedding model
    sparse_outputs: bool = False  # takes `sparse_outputs` (ours; not vllm_backend)
    # The tensors its config declares: a request may only use the optional ones it lists.
    inputs: frozenset[str] = frozenset()
    outputs: frozenset[str] = frozenset()
    # Its LoRA adapters: OpenAI model names served by this model with `lora_name` (as vLLM lists them).
    adapters: tuple[str, ...] = ()
    lora_name: str | None = None  # set on what `find_model` returns for an adapter's name

    def with_adapter(self, sampling: dict[str, Any]) -> dict[str, Any]:
        """A request's sampling parameters, naming the adapter its `model` asked for (vllm_backend's `lora_name`)."""
        return sampling if self.lora_name is None else {**sampling, "lora_name": self.lora_name}

    def serves(self, endpoint: Endpoint) -> bool:
        return endpoint.served_by(self)

    def require(self, tensors: dict[str, str]) -> None:
        """Each of `tensors` ({model tensor: the OpenAI field that needs it}) is declared, or a
        400 naming the field: a model without it (vllm_backend's) would refuse or ignore it."""
        for tensor, param in tensors.items():
            if tensor not in self.inputs and tensor not in self.outputs:
                raise BadRequest(f"{param}: is not supported by the model '{self.name}'", param=param)


class ModelServer(Protocol):
    url: str

    async def close(self) -> None: ...

    async def server_ready(self) -> bool: ...

    async def models(self, refresh: bool = False) -> dict[str, ModelInfo]:
        """The models in Triton's repository (may be cached for a few seconds)."""
        ...

    def generate(self, model: str, values: dict[str, Any], request_id: str = "") -> AsyncIterator[Outputs]:
        """The responses of one generation request; leaving early cancels it."""
        ...

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
        cross-encoder's: each row's second text, `text_pair`)."""
        ...


def find_model(models: dict[str, ModelInfo], name: str) -> ModelInfo | None:
    """The Triton model `name`, or the base model of the adapter `name` (its `lora_name` set)."""
    if (info := models.get(name)) is not None:
        return info
    base = next((m for m in models.values() if name in m.adapters), None)
    return None if base is None else dataclasses.replace(base, lora_name=name)


def drop_colliding_adapters(models: dict[str, ModelInfo]) -> None:
    """An adapter named like a Triton model or like another model's adapter would make `model`
    ambiguous: the Triton model (or the first model) keeps the name, with an error in the log."""
    claimed: dict[str, str] = {}
    for info in models.values():
        kept = []
        for adapter in info.adapters:
            owner = adapter if adapter in models else claimed.get(adapter)
            if owner is None:
                claimed[adapter] = info.name
                kept.append(adapter)
            elif (info.name, adapter) not in _reported:
                _reported.add((info.name, adapter))
                logger.error(
                    "LoRA adapter '%s' of model '%s' is not served: the name is taken by %s; rename it in model.json",
                    adapter, info.name, f"the model '{owner}'" if owner == adapter else f"an adapter of '{owner}'",
                )  # fmt: skip
        info.adapters = tuple(kept)


_reported: set[tuple[str, str]] = set()  # collisions logged once, not at every refresh


async def require_model(server: ModelServer, name: str, endpoint: Endpoint) -> ModelInfo:
    """The model `name` (or the base model of the adapter `name`), ready and serving `endpoint`,
    or the error saying which it is not."""
    note_model(name)  # for the request log, when it is on
    info = find_model(await server.models(), name) or find_model(await server.models(refresh=True), name)
    if info is None:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
    if not info.ready:
        raise ServiceUnavailable(f"The model '{name}' is not ready")
    if not info.serves(endpoint):
        raise BadRequest(f"The model '{name}' does not support this endpoint", param="model")
    return info


async def only_model(server: ModelServer, name: str | None) -> str:
    """`name`, or vLLM's rule where `model` may be left out (/tokenize): the one generation
    model served, else a 400 saying how many there are."""
    if name is not None:
        return name
    served = sorted(n for n, info in (await server.models()).items() if info.generate)
    if len(served) != 1:
        raise BadRequest(
            f"model: is required: this server serves {len(served)} generation models {served}", param="model"
        )
    return served[0]


async def get_triton(request: Request) -> ModelServer:
    # async: FastAPI runs a plain `def` dependency in its thread pool, one hop per request
    # behind a limit of 40 threads, so a burst queued /health behind every request's hop.
    return request.app.state.triton


Triton = Annotated[ModelServer, Depends(get_triton)]
