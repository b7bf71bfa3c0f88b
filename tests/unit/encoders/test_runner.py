"""The encoder runner's contract, on the fake Triton module and a fake encoder (no server).

Not decoupled: `execute` returns exactly one response per request, in order; a request
that cannot be served gets its own INVALID_ARG error while the others in its batch are
served, and a batch that fails as a whole fails each of its requests with INTERNAL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.unit.fakes import pb_utils
from tests.unit.fakes.harness import install, model_args
from triton_llm.errors import InvalidInput

E = pb_utils.TritonError


class FakeEncoder:
    """Embeds each text as [its length]; "too long" is refused, "explode" fails the batch."""

    batches: list[list[Any]] = []

    def __init__(self, *args: Any, **kwargs: Any):
        self.loaded = False

    def load(self) -> None:
        self.loaded = True

    def encode(self, requests: list[Any]) -> list[dict[str, np.ndarray] | InvalidInput]:
        FakeEncoder.batches.append(requests)
        results: list[dict[str, np.ndarray] | InvalidInput] = []
        for request in requests:
            if "explode" in request.texts:
                raise RuntimeError("out of memory")
            if "too long" in request.texts:
                results.append(InvalidInput("text_input", "is longer than the model's 512 tokens"))
            else:
                results.append({"embedding": np.array([[len(t)] for t in request.texts], dtype=np.float32)})
        return results


@pytest.fixture
def model(monkeypatch, tmp_path):
    runner = install(monkeypatch, tmp_path, "triton_llm.encoders.runner")
    monkeypatch.setattr(runner, "Encoder", FakeEncoder)
    FakeEncoder.batches = []
    model = runner.TritonPythonModel()
    model.initialize(model_args(decoupled=False, max_batch_size=8))
    assert model.encoder.loaded
    return model


def request(*texts: str | bytes, **parameters: Any) -> pb_utils.InferenceRequest:
    raw = np.array([[t.encode() if isinstance(t, str) else t] for t in texts], dtype=np.object_)
    return pb_utils.InferenceRequest({"text_input": raw}, pb_utils.Ledger(), parameters=parameters)


def test_each_request_gets_its_own_response_in_order(model):
    responses = model.execute([request("a", "bbb"), request("cc")])
    assert len(responses) == 2 and not any(r.has_error() for r in responses)
    assert responses[0].outputs()["embedding"].tolist() == [[1.0], [3.0]]
    assert responses[1].outputs()["embedding"].tolist() == [[2.0]]
    assert len(FakeEncoder.batches) == 1  # one batch for the encoder: shared forward passes


@pytest.mark.parametrize(
    "bad",
    [
        request("x", bogus=1),  # an unknown parameter: refused before the encoder
        request(b"\xff\xfe"),  # not UTF-8
        request("too long"),  # refused by the encoder for this request only
    ],
    ids=["parameter", "utf8", "encoder"],
)
def test_an_invalid_request_gets_its_own_error_and_the_others_in_the_batch_are_served(model, bad):
    responses = model.execute([request("aa"), bad, request("dddd")])
    assert len(responses) == 3
    assert responses[1].has_error() and responses[1].error().code() == E.INVALID_ARG
    assert responses[0].outputs()["embedding"].tolist() == [[2.0]]
    assert responses[2].outputs()["embedding"].tolist() == [[4.0]]
    served = [len(r.texts) for batch in FakeEncoder.batches for r in batch]
    assert served in ([1, 1], [1, 1, 1])  # requests refused by the parser never reach the encoder


def test_a_batch_that_fails_fails_each_of_its_requests_with_internal(model):
    responses = model.execute([request("a"), request("explode"), request("b")])
    assert len(responses) == 3
    assert all(r.has_error() and r.error().code() == E.INTERNAL for r in responses)
    assert "out of memory" in responses[0].error().message()


def test_a_model_without_batching_is_refused_at_load(monkeypatch, tmp_path):
    runner = install(monkeypatch, tmp_path, "triton_llm.encoders.runner")
    monkeypatch.setattr(runner, "Encoder", FakeEncoder)
    with pytest.raises(pb_utils.TritonModelException, match="max_batch_size"):
        runner.TritonPythonModel().initialize(model_args(decoupled=False, max_batch_size=0))
