"""A stand-in for Triton behind the frontend (`backend.ModelServer`): scripted model responses
and errors, so that `create_app(client=FakeTriton(...))` is tested in milliseconds.

A generation model answers each request with a script: a list whose items are either a
`Response` (turned into the tensors a real model sends) or an error message as Triton
would carry it (decoded by the frontend's own `errors.from_triton`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openai_frontend import tracing
from openai_frontend.backend import ModelInfo, Outputs
from openai_frontend.errors import BadRequest, NotFound, from_triton
from triton_llm.generation import protocol


@dataclass
class Response:
    """One model response; lists are per choice. None leaves the tensor out (sparse outputs)."""

    texts: list[str]
    finish_reasons: list[str] | None = None
    num_output_tokens: list[int] | None = None
    num_input_tokens: int | None = None
    logprobs: list[list[dict] | None] | None = None
    token_ids: list[list[int]] | None = None
    prompt_token_ids: list[int] | None = None
    prompt_logprobs: list[dict] | None = None

    def outputs(self) -> Outputs:
        out: Outputs = {"text_output": np.array([t.encode() for t in self.texts], dtype=np.object_)}
        if self.finish_reasons is not None:
            out["finish_reason"] = np.array([r.encode() for r in self.finish_reasons], dtype=np.object_)
        if self.num_output_tokens is not None:
            out["num_output_tokens"] = np.array(self.num_output_tokens, dtype=np.uint32)
        if self.num_input_tokens is not None:
            out["num_input_tokens"] = np.array([self.num_input_tokens], dtype=np.uint32)
        if self.logprobs is not None:
            out["logprobs"] = np.array([json.dumps(lp).encode() for lp in self.logprobs], dtype=np.object_)
        if self.token_ids is not None:
            out["token_ids"] = np.array([json.dumps(ids).encode() for ids in self.token_ids], dtype=np.object_)
        if self.prompt_token_ids is not None:
            out["prompt_token_ids"] = np.array(self.prompt_token_ids, dtype=np.int64)
        if self.prompt_logprobs is not None:
            out["prompt_logprobs"] = np.array([json.dumps(self.prompt_logprobs).encode()], dtype=np.object_)
        return out


@dataclass
class TritonError:
    """An error as Triton hands it to the client: its message, and a status when it has one."""

    message: str
    status: str = ""


def model_error(param: str, message: str) -> TritonError:
    """A model's structured error (docs/protocol.md#errors), as `InvalidInput.to_wire` sends it."""
    return TritonError(json.dumps({"message": message, "param": param}))


Script = list[Response | TritonError]


def generation_model(name: str, sparse: bool = False) -> ModelInfo:
    """A model of ours: it declares every tensor of the protocol."""
    return ModelInfo(
        name, ready=True, generate=True, chat=True, embed=False, created=0, sparse_outputs=sparse,
        inputs=frozenset(spec["name"] for spec in protocol.INPUTS),
        outputs=frozenset(spec["name"] for spec in protocol.OUTPUTS),
    )  # fmt: skip


def embedding_model(name: str, max_batch_size: int = 4) -> ModelInfo:
    return ModelInfo(name, ready=True, generate=False, chat=False, embed=True, created=0, max_batch_size=max_batch_size)


@dataclass
class FakeTriton:
    models_: list[ModelInfo] = field(default_factory=lambda: [generation_model("gen"), embedding_model("emb")])
    # (model, request values) -> the responses of that request
    script: Callable[[str, dict[str, Any]], Script] = lambda model, values: []
    # (model, texts, parameters) -> its outputs, an error, or None for the default outputs
    embedder: Callable[[str, list[str], dict[str, Any]], Outputs | TritonError | None] | None = None
    url: str = "fake:8001"
    ready: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)  # Triton's request id of each request
    # The gRPC metadata TritonClient sends with each request: a traced one's W3C context, else None.
    grpc_headers: list[dict[str, str] | None] = field(default_factory=list)
    # Model control: each call as (action, model), and a load's error (Triton's message) by model.
    model_controls: list[tuple[str, str]] = field(default_factory=list)
    load_errors: dict[str, str] = field(default_factory=dict)
    # (model, command) -> a runtime-LoRA control answer (`lora_control`) or an error; and those sent
    controller: Callable[[str, dict[str, Any]], dict[str, Any] | TritonError] | None = None
    controls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def close(self) -> None:
        pass

    async def server_ready(self) -> bool:
        return self.ready

    async def models(self, refresh: bool = False) -> dict[str, ModelInfo]:
        return {m.name: m for m in self.models_}

    async def load_model(self, model: str) -> None:
        """As TritonClient's: an entry of `models_` (one with `offline` set is a repository entry not loaded)."""
        info = self._entry(model)
        self.model_controls.append(("load", model))
        if model in self.load_errors:
            info.offline = True
            raise BadRequest(f"model: '{model}' could not be loaded: {self.load_errors[model]}", param="model")
        info.ready, info.offline = True, False

    async def unload_model(self, model: str) -> None:
        info = self._entry(model)
        self.model_controls.append(("unload", model))
        info.ready, info.offline = False, True

    def _entry(self, model: str) -> ModelInfo:
        info = next((m for m in self.models_ if m.name == model), None)
        if info is None:
            raise NotFound(f"The model '{model}' is not in Triton's repository", param="model", code="model_not_found")
        return info

    async def generate(self, model: str, values: dict[str, Any], request_id: str = "") -> AsyncIterator[Outputs]:
        self.requests.append(values)
        self.request_ids.append(request_id)
        self.grpc_headers.append(tracing.triton_headers(model))
        for item in self.script(model, values):
            if isinstance(item, TritonError):
                raise from_triton(item.message, item.status)
            yield item.outputs()

    async def lora_control(self, model: str, command: dict[str, Any]) -> dict[str, Any]:
        self.controls.append((model, command))
        answer = self.controller(model, command) if self.controller else {"message": "", "adapters": []}
        if isinstance(answer, TritonError):
            raise from_triton(answer.message, answer.status)
        return answer

    async def embed(self, model: str, texts: list[str], parameters: dict[str, Any], request_id: str = "") -> Outputs:
        self.requests.append({"texts": texts, **parameters})
        self.request_ids.append(request_id)
        self.grpc_headers.append(tracing.triton_headers(model))
        result = (self.embedder and self.embedder(model, texts, parameters)) or _embeddings(texts)
        if isinstance(result, TritonError):
            raise from_triton(result.message, result.status)
        return result


def _embeddings(texts: list[str]) -> Outputs:
    return {
        "embedding": np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32),
        "num_input_tokens": np.array([len(t.split()) for t in texts], dtype=np.int32),
    }
