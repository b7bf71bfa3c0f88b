"""A fake `triton_python_backend_utils` whose response senders enforce the runner's rules.

The real module exists only inside tritonserver's Python-backend stub. This one has what
our runners use, and its senders record a violation, instead of crashing the server later,
when a runner:
  - sends a second final response, or anything after the final one;
  - calls `is_cancelled()` after the final response (the real server has freed the response
    factory by then and segfaults);
  - calls `send` or `is_cancelled` from a thread other than the one that owns the senders.
Tests put it in `sys.modules` before importing a runner (`tests.unit.fakes.harness`).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

import numpy as np

TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
MODEL_DIR = ""  # what get_model_dir() returns; set by the test


class TritonModelException(Exception):
    pass


class TritonError:
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = range(8)

    def __init__(self, message: str, code: int = UNKNOWN):
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code

    def __repr__(self) -> str:
        return f"TritonError({self._message!r}, {self._code})"


class Tensor:
    def __init__(self, name: str, value: np.ndarray):
        self._name, self._value = name, np.asarray(value)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._value


class InferenceResponse:
    def __init__(self, output_tensors: list[Tensor] | None = None, error: TritonError | None = None):
        self._tensors = list(output_tensors or [])
        self._error = error

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error

    def output_tensors(self) -> list[Tensor]:
        return self._tensors

    def outputs(self) -> dict[str, np.ndarray]:
        """Test helper: output name -> array."""
        return {t.name(): t.as_numpy() for t in self._tensors}


class Ledger:
    """What every sender saw, shared by the senders of one test."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.owner: threading.Thread | None = None  # the only thread allowed to touch senders
        self._lock = threading.Lock()

    def violate(self, message: str) -> None:
        with self._lock:
            self.violations.append(message)

    def check_thread(self, what: str, request_id: str) -> None:
        current = threading.current_thread()
        if self.owner is not None and current is not self.owner:
            self.violate(f"{request_id}: {what} from thread {current.name!r}, not {self.owner.name!r}")


class ResponseSender:
    def __init__(self, request_id: str, ledger: Ledger):
        self.request_id = request_id
        self.ledger = ledger
        self.responses: list[tuple[InferenceResponse, int]] = []
        self.cancelled = False  # the client's side: set by the test
        self.final = threading.Event()

    def send(self, response: InferenceResponse | None = None, flags: int = 0) -> None:
        self.ledger.check_thread("send", self.request_id)
        if self.final.is_set():
            self.ledger.violate(f"{self.request_id}: send after the final response")
            raise TritonModelException("Unable to send response. Response sender has been closed.")
        self.responses.append((response, flags))
        if flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL:
            self.final.set()

    def is_cancelled(self) -> bool:
        self.ledger.check_thread("is_cancelled", self.request_id)
        if self.final.is_set():
            self.ledger.violate(f"{self.request_id}: is_cancelled() after the final response (segfault)")
        return self.cancelled

    # -- test helpers ----------------------------------------------------------------------

    def finals(self) -> list[InferenceResponse]:
        return [r for r, flags in self.responses if flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL]

    def error(self) -> TritonError | None:
        """The error of the final response, if it is one."""
        finals = self.finals()
        return finals[-1].error() if finals else None


class InferenceRequest:
    def __init__(self, inputs: dict[str, Any], ledger: Ledger, request_id: str = "", parameters: dict | None = None):
        self._inputs = {name: Tensor(name, value) for name, value in inputs.items()}
        self._id = request_id
        self._parameters = json.dumps(parameters or {})
        self.sender = ResponseSender(request_id, ledger)
        self.trace_context: str | None = None  # what Triton's OpenTelemetry mode hands the model (a test sets it)

    def request_id(self) -> str:
        return self._id

    def parameters(self) -> str:
        return self._parameters

    def get_response_sender(self) -> ResponseSender:
        return self.sender

    def trace(self) -> InferenceTrace:
        return InferenceTrace(self.trace_context)


class InferenceTrace:
    """Triton 2.51's `request.trace()`: `get_context()` is the JSON carrier of the request's span
    ({"traceparent": ...}) when Triton traced it, else None."""

    def __init__(self, context: str | None):
        self._context = context

    def get_context(self) -> str | None:
        return self._context


def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
    return request._inputs.get(name)


def get_model_dir() -> str:
    return MODEL_DIR


def using_decoupled_model_transaction_policy(model_config: dict[str, Any]) -> bool:
    return bool(model_config.get("model_transaction_policy", {}).get("decoupled", False))


class _Metric:
    def __init__(self, labels: dict[str, str]):
        self.labels, self.value = labels, 0.0

    def set(self, value: float) -> None:
        self.value = value

    def increment(self, value: float) -> None:
        self.value += value


class MetricFamily:
    GAUGE, COUNTER = "gauge", "counter"
    families: dict[str, MetricFamily] = {}  # by name: the test reads them

    def __init__(self, name: str, description: str, kind: str):
        # Triton's registry gives every stub that names a family the same one.
        same = MetricFamily.families.get(name)
        self.name, self.metrics = name, same.metrics if same else []
        MetricFamily.families[name] = self

    def Metric(self, labels: dict[str, str]) -> _Metric:  # the real API's name
        metric = _Metric(labels)
        self.metrics.append(metric)
        return metric


class Logger:
    lines: deque[str] = deque(maxlen=1000)

    @classmethod
    def log_info(cls, message: str) -> None:
        cls.lines.append(message)

    log_warn = log_error = log_info
