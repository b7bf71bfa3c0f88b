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

from openai_frontend import adapters
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
    # Its names from model.json's `served_model_name` (listed instead of `name`, which still routes).
    aliases: tuple[str, ...] = ()
    # Not serving by choice: never loaded, or unloaded (or its load failed) through the control
    # routes: a 404 to requests, and left out of readiness. `changing`: a load or an unload through
    # them is in flight (Triton's own readiness is false meanwhile: serving/health.py).
    offline: bool = False
    changing: bool = False
    # Runtime LoRA (its config declares `lora_control`): adapters load and unload while it serves, and
    # `adapters` is read from it; `lora_resolver`: it loads an unknown adapter name on first use.
    lora_control: bool = False
    lora_resolver: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """The names /v1/models lists for it."""
        return self.aliases or (self.name,)

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

    async def lora_control(self, model: str, command: dict[str, Any]) -> dict[str, Any]:
        """A runtime-LoRA control request's answer (docs/protocol.md: `lora_control`)."""
        ...

    async def close(self) -> None: ...

    async def server_ready(self) -> bool: ...

    async def models(self, refresh: bool = False) -> dict[str, ModelInfo]:
        """The models in Triton's repository (may be cached for a few seconds)."""
        ...

    def generate(self, model: str, values: dict[str, Any], request_id: str = "", **extra) -> AsyncIterator[Outputs]:
        """The responses of one generation request; leaving early cancels it (`extra`: KServe v2's `parameters`)."""
        ...

    async def infer(self, model: str, inputs: list[Any], **options: Any) -> tuple[Outputs, str]:
        """KServe v2's `/infer` on any model: its outputs and the version that answered."""
        ...

    async def metadata(self, model: str = "", version: str = "") -> dict[str, Any]:
        """Triton's server metadata, or a model's (tensor names, datatypes, shapes)."""
        ...

    async def model_ready(self, model: str, version: str = "") -> bool: ...

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

    async def load_model(self, model: str) -> None:
        """Load (or reload) the repository entry `model`, returning once it is READY; the model
        list is read afresh after it. An entry not in the repository is a NotFound."""
        ...

    async def unload_model(self, model: str) -> None:
        """Unload `model`, returning once Triton has let its requests in flight finish; it stays
        unloaded (a 404 to requests) until a load."""
        ...


def find_model(models: dict[str, ModelInfo], name: str) -> ModelInfo | None:
    """The Triton model `name`, the model one of whose aliases is `name`, or the base model of the
    adapter `name` (its `lora_name` set). `drop_colliding_names` left each name one owner."""
    if (info := models.get(name)) is not None:
        return info
    if (info := next((m for m in models.values() if name in m.aliases), None)) is not None:
        return info
    base = next((m for m in models.values() if name in m.adapters), None)
    return None if base is None else dataclasses.replace(base, lora_name=name)


def drop_colliding_names(models: dict[str, ModelInfo]) -> None:
    """A name shared by two models would make `model` ambiguous, so each name gets one owner, in
    this order: a Triton model's own name; the aliases (`served_model_name`), model by model in
    the index's order; then the LoRA adapters likewise. A later claim is dropped, with an error
    in the log (once, not at every refresh)."""
    claimed: dict[str, str] = {name: f"the model '{name}'" for name in models}
    for info in models.values():
        info.aliases = _claim(info, info.aliases, "served_model_name", claimed, "an alias")
    for info in models.values():
        info.adapters = _claim(info, info.adapters, "LoRA adapter", claimed, "an adapter")


def _claim(info: ModelInfo, names: tuple[str, ...], kind: str, claimed: dict[str, str], what: str) -> tuple[str, ...]:
    kept = []
    for name in dict.fromkeys(names):
        owner = claimed.get(name)
        if owner is None or (kind == "served_model_name" and name == info.name):
            claimed.setdefault(name, f"{what} of '{info.name}'")
            kept.append(name)
        elif (kind, info.name, name) not in _reported:
            _reported.add((kind, info.name, name))
            logger.error(
                "%s '%s' of model '%s' is not served: the name is taken by %s; rename it in model.json",
                kind, name, info.name, owner,
            )  # fmt: skip
    return tuple(kept)


_reported: set[tuple[str, str, str]] = set()  # collisions logged once, not at every refresh


async def require_model(server: ModelServer, name: str, endpoint: Endpoint) -> ModelInfo:
    """The model `name` (or the base model of the adapter `name`), ready and serving `endpoint`,
    or the error saying which it is not."""
    note_model(name)  # for the request log, when it is on
    info = find_model(await server.models(), name) or find_model(await server.models(refresh=True), name)
    if info is None:
        info = await adapters.resolve(server, name)  # a resolver's adapter, on first use
    if info is None or info.offline:
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
