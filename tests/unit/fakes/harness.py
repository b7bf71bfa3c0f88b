"""Start a runner on the fake Triton module (`pb_utils`) and drive it as tritonserver would.

`start_generation` loads `triton_llm.generation.runner` with the fake module and a fake
engine, calls `initialize`, and hands back a `Served` that makes requests, calls `execute`
from the test's thread (Triton's), waits for final responses and checks every rule of the
fake senders at the end.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.unit.fakes import pb_utils
from tests.unit.fakes.engine import FakeEngine
from triton_llm.generation import stats
from triton_llm.settings import GenerationSettings, Typed, load_model_json, parse_settings
from triton_llm.tasks import Task


def install(monkeypatch: pytest.MonkeyPatch, model_dir: Path, module: str) -> ModuleType:
    """Import `module` (a runner) against the fake Triton module, serving `model_dir`."""
    (model_dir / "model.json").write_text(json.dumps({"model": "fake-model"}))
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", pb_utils)
    monkeypatch.setattr(pb_utils, "MODEL_DIR", str(model_dir))
    pb_utils.MetricFamily.families.clear()
    # With a handler present, `route_logs_to_triton` leaves the logger as it is: records still
    # reach pytest's capture, and no Triton handler outlives the test.
    monkeypatch.setattr(logging.getLogger("triton_llm"), "handlers", [logging.NullHandler()])
    return importlib.import_module(module)


def fake_settings(model_dir: str) -> Typed:
    """model.json as the factory reads it, with no model config to look up: a fake engine has none."""
    return Typed(parse_settings(GenerationSettings, load_model_json(model_dir)), Task.TEXT_GENERATION, "fake")


def use_engine(monkeypatch: pytest.MonkeyPatch, runner: ModuleType, engine: Any) -> None:
    """The runner's factory hands out `engine`, for model.json read as `fake_settings` reads it."""
    monkeypatch.setattr(runner, "read_settings", fake_settings)
    monkeypatch.setattr(runner, "create_engine", lambda *args, **kwargs: engine)


def model_args(decoupled: bool = True, max_batch_size: int = 0) -> dict[str, Any]:
    config = {"max_batch_size": max_batch_size, "model_transaction_policy": {"decoupled": decoupled}}
    return {
        "model_name": "fake",
        "model_version": "1",
        "model_config": json.dumps(config),
        "model_instance_kind": "CPU",
        "model_instance_device_id": "0",
    }


class Served:
    """A generation model started on a fake engine, and the requests sent to it."""

    def __init__(self, runner: ModuleType, engine: FakeEngine):
        self.runner = runner
        self.engine = engine
        self.ledger = pb_utils.Ledger()
        self.requests: list[pb_utils.InferenceRequest] = []
        self.model = runner.TritonPythonModel()
        self.model.initialize(model_args())
        # The runner's rule: one thread owns every response sender.
        self.ledger.owner = self.model._response_thread
        self.stopped = False

    def request(self, prompt: str, stream: bool = False, **inputs: Any) -> pb_utils.InferenceRequest:
        tensors = {"text_input": np.array([prompt.encode()], dtype=np.object_), "stream": np.array([stream])}
        tensors.update(inputs)
        request = pb_utils.InferenceRequest(tensors, self.ledger, request_id=f"req-{len(self.requests)}")
        self.requests.append(request)
        return request

    def execute(self, *requests: pb_utils.InferenceRequest) -> None:
        if self.model.execute(list(requests)) is not None:
            raise AssertionError("a decoupled execute returns None")

    def wait(self, *requests: pb_utils.InferenceRequest, timeout: float = 5.0) -> None:
        for request in requests or self.requests:
            if not request.sender.final.wait(timeout):
                raise AssertionError(f"{request.request_id()}: no final response in {timeout} s")

    def finalize(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.model.finalize()

    def check(self) -> None:
        """Stop the model, then: no rule broken, exactly one final response per request."""
        self.finalize()
        assert self.ledger.violations == []
        for request in self.requests:
            assert len(request.sender.finals()) == 1, request.request_id()
        assert not self.model._loop_thread.is_alive() and not self.model._response_thread.is_alive()

    def outcomes(self) -> dict[str, float]:
        """Ended requests as the metrics count them: a success by its choice's finish reason
        (`vllm:request_success_total`), others by outcome (`llm_requests_failed_total`)."""
        counters, _ = self.engine.stats.snapshot()
        out = {label: value for (name, label), value in counters.items() if name == stats.FAILED}
        if successes := sum(value for (name, _), value in counters.items() if name == stats.SUCCESS):
            out["success"] = successes
        return out


def start_generation(monkeypatch: pytest.MonkeyPatch, model_dir: Path, engine: FakeEngine) -> Served:
    runner = install(monkeypatch, model_dir, "triton_llm.generation.runner")
    use_engine(monkeypatch, runner, engine)
    monkeypatch.setattr(runner, "CANCEL_POLL_S", 0.01)  # a client's cancel is seen sooner
    return Served(runner, engine)
