"""The Triton Python-backend model for embeddings and the encoder tasks: Triton's side only.

Not decoupled: one response per request. Batching is Triton's: with `dynamic_batching` in
config.pbtxt, `execute` receives every request queued while the previous batch ran, and
the encoder runs all their texts in shared forward passes. Each request's texts travel as
the batch dimension of `text_input` (shape [n, 1]), a cross-encoder's second texts as
`text_pair`; its options as request parameters (`truncate_prompt_tokens`, `dimensions`,
`use_activation`). The inputs and outputs of the model's task are
filled into the config at load (`triton_llm.encoders.protocol`, docs/protocol.md); the
work is `triton_llm.encoders.engine`'s.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

# Set before torch loads OpenMP: between batches the stub waits on Triton, and OpenMP
# workers spinning for 300,000 rounds (libgomp's default) take the cores from Triton and the
# frontend meanwhile. A short spin still catches the next op of a forward pass. minilm via
# /v1/embeddings on 2 cores (tools.bench_embeddings), embeddings/s at 1 / 32 concurrent:
# default 83 / 263, spin 10,000: 95 / 263, passive (no spin): 61 / 305.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import triton_python_backend_utils as pb_utils  # noqa: E402  (only exists inside the stub)

from triton_llm import served_names  # noqa: E402
from triton_llm.encoders.engine import Encoder, resolve_encoder_task  # noqa: E402
from triton_llm.encoders.protocol import EncodeRequest, parse_request  # noqa: E402
from triton_llm.errors import InvalidInput  # noqa: E402
from triton_llm.gc_heap import freeze_heap  # noqa: E402
from triton_llm.hf_loading import device  # noqa: E402
from triton_llm.settings import EncoderSettings, load_model_json, parse_settings  # noqa: E402
from triton_llm.triton_log import route_logs_to_triton  # noqa: E402

logger = logging.getLogger("triton_llm")


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        task_class, _, _ = resolve_encoder_task(_settings())
        config = auto_complete_model_config.as_dict()
        have = {t["name"] for t in config["input"]} | {t["name"] for t in config["output"]}
        for spec in [*task_class.inputs, *served_names.advertised_inputs(pb_utils.get_model_dir())]:
            if spec["name"] not in have:
                auto_complete_model_config.add_input(spec)
        for spec in task_class.outputs:
            if spec["name"] not in have:
                auto_complete_model_config.add_output(spec)
        return auto_complete_model_config

    def initialize(self, args: dict[str, Any]) -> None:
        route_logs_to_triton()
        self.model_name = args["model_name"]
        if json.loads(args["model_config"]).get("max_batch_size", 0) < 1:
            raise pb_utils.TritonModelException(
                f"{self.model_name}: encoder models need `max_batch_size` >= 1 (texts travel as the batch dimension)"
            )
        self.encoder = Encoder(_settings(), device(args))
        self.encoder.load()
        freeze_heap()

    def execute(self, requests):
        parsed: list[EncodeRequest | InvalidInput] = []
        for request in requests:
            try:
                parsed.append(_parse(request))
            except InvalidInput as exc:
                parsed.append(exc)
        servable = [p for p in parsed if isinstance(p, EncodeRequest)]
        try:
            results = iter(self.encoder.encode(servable))
        except Exception as exc:
            logger.exception("%s: a batch of %d requests failed", self.model_name, len(servable))
            error = pb_utils.TritonError(f"inference failed: {exc}", pb_utils.TritonError.INTERNAL)
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        responses = []
        for p in parsed:
            result = next(results) if isinstance(p, EncodeRequest) else p
            if isinstance(result, InvalidInput):
                error = pb_utils.TritonError(result.to_wire(), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
            else:
                tensors = [pb_utils.Tensor(name, value) for name, value in result.items()]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses


def _settings() -> EncoderSettings:
    return parse_settings(EncoderSettings, load_model_json(pb_utils.get_model_dir()))


def _parse(request) -> EncodeRequest:
    text_input = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy()
    text_pair = pb_utils.get_input_tensor_by_name(request, "text_pair")  # None unless sent
    return parse_request(text_input, request.parameters(), None if text_pair is None else text_pair.as_numpy())
