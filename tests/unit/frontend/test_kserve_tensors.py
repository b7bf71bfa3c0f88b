"""KServe v2 tensors (serving/kserve_tensors.py): tritonclient.http's own request bytes, JSON and
binary, parse into the arrays it meant; outputs go back as it reads them; bad input is a 400
naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.http import InferResult

from openai_frontend.errors import BadRequest
from openai_frontend.serving import kserve_tensors as tensors

ARRAYS = {
    "text_input": np.array([[b"caf\xc3\xa9"], [b"x"]], dtype=np.object_),
    "ids": np.array([[1, -2, 3]], dtype=np.int64),
    "f": np.array([0.5, 1.25], dtype=np.float32),
    "flag": np.array([True], dtype=np.bool_),
}


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclients_request_parses_into_its_arrays(binary):
    inputs = []
    for name, array in ARRAYS.items():
        tensor = httpclient.InferInput(name, list(array.shape), httpclient.np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, length = httpclient.InferenceServerClient.generate_request_body(inputs, parameters={"n": 2, "ok": True})
    request, arrays = tensors.parse_request(body, None if length is None else str(length))
    assert [t.name for t in request.inputs] == list(ARRAYS)
    for got, want in zip(arrays, ARRAYS.values(), strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert tensors.arguments(request.parameters) == {"parameters": {"n": 2, "ok": True}}


@pytest.mark.parametrize("binary", [True, False])
def test_outputs_read_back_with_tritonclient(binary):
    entries, chunks = zip(*(tensors.output(n, a, binary) for n, a in ARRAYS.items()), strict=True)
    header = json.dumps({"model_name": "m", "outputs": list(entries)}).encode()
    result = InferResult.from_response_body(header + b"".join(chunks), header_length=len(header) if binary else None)
    for name, want in ARRAYS.items():
        if want.dtype == np.object_ and not binary:  # JSON carries BYTES as text (so does Triton's port)
            want = np.array([[v.decode() for v in row] for row in want], dtype=np.object_)
        assert np.array_equal(result.as_numpy(name), want), name


def _request(**tensor) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1], **tensor}]}).encode()


@pytest.mark.parametrize(
    ("body", "length", "names"),
    [
        (_request(datatype="INT3"), None, "inputs.0.datatype"),
        (_request(data=[1, 2]), None, "inputs.0.data"),
        (_request(data=["1"]), None, "inputs.0.data"),
        (_request(data=[2**40]), None, "inputs.0.data"),
        (_request(data=None), None, "inputs.0.data"),
        (_request(shape=[-1]), None, "inputs.0.shape.0"),
        (_request(parameters={"binary_data_size": 8}), None, "inputs.0.parameters.binary_data_size"),
        (_request(parameters={"binary_data_size": 3}) + b"abc", "999999", "Inference-Header"),
        (b"[" * 100_000, None, "nested too deeply"),
        (json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["\ud800"]}]}).encode(),
         None, "inputs.0.data.0"),
        (json.dumps({"inputs": [], "parameters": {}}).encode(), None, "inputs"),
    ],
)  # fmt: skip
def test_bad_tensors_are_400s_naming_the_field(body, length, names):
    with pytest.raises(BadRequest) as caught:
        tensors.parse_request(body, length)
    assert names in caught.value.message, caught.value.message


@pytest.mark.parametrize(
    ("parameters", "names"),
    [({"priority": -1}, "parameters.priority"), ({"triton_x": 1}, "parameters.triton_x"),
     ({"headers": "a"}, "parameters.headers"), ({"sequence_start": 1}, "parameters.sequence_start")],
)  # fmt: skip
def test_tritons_own_parameters_are_checked(parameters, names):
    with pytest.raises(BadRequest, match=names):
        tensors.arguments(parameters)
    assert tensors.arguments({"priority": 3, "binary_data_output": True, "t": 0.5}) == {
        "priority": 3, "parameters": {"t": 0.5}}  # fmt: skip


def test_kserves_client_request_with_its_model_name_parses():
    # kserve 0.21.0's InferRequest.to_rest: its id and model_name beside the inputs, the bytes
    # after the JSON as tritonclient writes them (the server reads the model from the path).
    raw = np.array([b"a", b"bc"], dtype=np.object_)
    packed = b"".join(len(v).to_bytes(4, "little") + v for v in raw)
    header = json.dumps({"id": "r1", "model_name": "m", "inputs": [
        {"name": "text_input", "shape": [2, 1], "datatype": "BYTES", "parameters": {"binary_data_size": len(packed)}}
    ]}).encode()  # fmt: skip
    request, arrays = tensors.parse_request(header + packed, str(len(header)))
    assert request.id == "r1" and np.array_equal(arrays[0].reshape(-1), raw)
