"""Small helpers over the official clients, to keep the tests about behaviour."""

from __future__ import annotations

import json
import queue
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

_TYPES = {bool: "BOOL", str: "BYTES"}


def grpc_inputs(values: dict[str, Any]) -> list[grpcclient.InferInput]:
    inputs = []
    for name, value in values.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        tensor = grpcclient.InferInput(name, [1], _TYPES[type(value)])
        dtype = np.object_ if isinstance(value, str) else np.bool_
        tensor.set_data_from_numpy(np.array([value.encode() if isinstance(value, str) else value], dtype=dtype))
        inputs.append(tensor)
    return inputs


class GrpcStream:
    """One gRPC bidirectional stream; collects the responses of one request."""

    def __init__(self, url: str):
        self.client = grpcclient.InferenceServerClient(url)
        self.responses: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.responses.put((result, error)))

    def send(self, model: str, values: dict[str, Any], request_id: str = "") -> None:
        self.client.async_stream_infer(
            model, grpc_inputs(values), request_id=request_id, enable_empty_final_response=True
        )

    def next(self, timeout: float = 120):
        """(outputs dict, is_final) of the next response; raises its error."""
        result, error = self.responses.get(timeout=timeout)
        if error is not None:
            raise error
        response = result.get_response()
        final = response.parameters["triton_final_response"].bool_param
        names = [o.name for o in response.outputs]
        return {n: result.as_numpy(n) for n in names}, final

    def collect(self, timeout: float = 120) -> list[dict[str, np.ndarray]]:
        out = []
        while True:
            outputs, final = self.next(timeout)
            if outputs:
                out.append(outputs)
            if final:
                return out

    def close(self, cancel: bool = False) -> None:
        self.client.stop_stream(cancel_requests=cancel)
        self.client.close()


def text(outputs: dict[str, np.ndarray], name: str = "text_output", i: int = 0) -> str:
    value = outputs[name].reshape(-1)[i]
    return value.decode() if isinstance(value, bytes) else value
