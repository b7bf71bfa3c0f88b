"""KServe v2 tensors: a request's JSON (and binary) tensors -> numpy -> Triton's gRPC inputs,
and Triton's outputs -> the response's JSON (and binary) tensors.

The binary tensor data extension (what `tritonclient.http` sends and asks for by default): the
body is the JSON header, `Inference-Header-Content-Length` bytes long, then each tensor whose
`parameters.binary_data_size` is set, in order; BYTES elements as Triton serialises them (a
4-byte little-endian length before each). Every refusal is a 400 naming the field
(`inputs.0.data`), as Triton's own parser names the tensor.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from pydantic import ValidationError
from tritonclient.grpc import InferInput
from tritonclient.utils import deserialize_bytes_tensor, np_to_triton_dtype, serialize_byte_tensor, triton_to_np_dtype

from openai_frontend.errors import BadRequest, FieldValueError, validation_error
from openai_frontend.schemas import integers, raw
from openai_frontend.schemas.kserve import InferenceRequest, InputTensor

HEADER_LENGTH = "inference-header-content-length"
NUMERIC = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}
DATATYPES = NUMERIC | {"BOOL", "BYTES"}
# Triton's own parameters, which tritonclient refuses in `parameters`: the v2 ones travel as its arguments.
ARGUMENTS = {"priority", "timeout", "sequence_id", "sequence_start", "sequence_end"}
RESERVED = {"headers", "binary_data_output"}


def load_json(data: bytes, what: str = "The request body") -> Any:
    """JSON, or a 400: invalid, not UTF-8, nested past the decoder or past `raw.MAX_DEPTH`."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply to parse") from None
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not valid UTF-8") from None
    except ValueError as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None
    try:
        raw.check(value)
    except FieldValueError as exc:
        raise BadRequest(str(exc), param=exc.param) from None
    return value


def split_body(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """(the JSON header, the binary data after it) of a v2 request."""
    if header_length is None:
        return load_json(body), b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise BadRequest(f"Inference-Header-Content-Length: {header_length!r} is not a length within the body")
    cut = int(header_length)
    return load_json(body[:cut], "The JSON header"), body[cut:]


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, list[np.ndarray]]:
    """The request and each input's array, in order."""
    header, binary = split_body(body, header_length)
    if not isinstance(header, dict):
        raise BadRequest("The request body must be a JSON object (KServe v2's inference request)")
    try:
        request = InferenceRequest.model_validate(header)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None
    arrays, offset = [], 0
    for i, tensor in enumerate(request.inputs):
        size = tensor.parameters.binary_data_size if tensor.parameters else None
        if size is not None:
            if offset + size > len(binary):
                raise BadRequest(f"inputs.{i}.parameters.binary_data_size: {size} bytes are not in the body",
                                 param=f"inputs.{i}.parameters.binary_data_size")  # fmt: skip
            arrays.append(from_binary(tensor, i, binary[offset : offset + size]))
            offset += size
        else:
            arrays.append(from_json(tensor.data, tensor.datatype, list(tensor.shape), f"inputs.{i}"))
    if offset != len(binary):
        raise BadRequest(f"The body has {len(binary) - offset} bytes after the tensors' binary data")
    return request, arrays


def infer_input(tensor: InputTensor, array: np.ndarray) -> InferInput:
    out = InferInput(tensor.name, list(array.shape), tensor.datatype)
    out.set_data_from_numpy(array)
    return out


def _check_datatype(datatype: str, where: str) -> np.dtype | None:
    if datatype not in DATATYPES:
        raise BadRequest(f"{where}.datatype: {datatype!r} is not one of {sorted(DATATYPES)}", param=f"{where}.datatype")
    return None if datatype == "BYTES" else np.dtype(triton_to_np_dtype(datatype))


def from_binary(tensor: InputTensor, i: int, data: bytes) -> np.ndarray:
    where, shape = f"inputs.{i}", list(tensor.shape)
    dtype = _check_datatype(tensor.datatype, where)
    if dtype is None:
        try:
            array = deserialize_bytes_tensor(data)
        except Exception:  # struct.error, ValueError: a length past the end
            raise BadRequest(f"{where}: its binary data is not serialised BYTES", param=where) from None
    elif len(data) % dtype.itemsize:
        raise BadRequest(f"{where}: {len(data)} bytes of binary data are not whole {tensor.datatype}", param=where)
    else:
        array = np.frombuffer(data, dtype=dtype.newbyteorder("<"))
    return _shaped(array, shape, where)


def from_json(data: Any, datatype: str, shape: list[int], where: str) -> np.ndarray:
    dtype = _check_datatype(datatype, where)
    if data is None:
        raise BadRequest(f"{where}.data: is required (or parameters.binary_data_size)", param=f"{where}.data")
    flat = _flatten(data if isinstance(data, list) else [data])
    field = f"{where}.data"
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise BadRequest(f"{field}: a BYTES tensor's elements must be strings", param=field)
        array = np.array([v.encode("utf-8") for v in flat], dtype=np.object_)
    elif datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise BadRequest(f"{field}: a BOOL tensor's elements must be true or false", param=field)
        array = np.array(flat, dtype=np.bool_)
    else:
        want = float if dtype.kind == "f" else int
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and (want is float or isinstance(v, int))
                   for v in flat):  # fmt: skip
            raise BadRequest(f"{field}: a {datatype} tensor's elements must be {want.__name__}s", param=field)
        info = np.iinfo(dtype) if dtype.kind in "iu" else None
        if info is not None and any(not info.min <= v <= info.max for v in flat):
            raise BadRequest(f"{field}: an element is out of {datatype}'s range", param=field)
        array = np.array(flat, dtype=dtype)
    return _shaped(array, shape, where)


def _flatten(data: list) -> list:
    """The elements of nested lists, in order, without recursion (row-major, as Triton reads them)."""
    out, stack = [], [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            out.append(item)
    return out


_END = object()


def _shaped(array: np.ndarray, shape: list[int], where: str) -> np.ndarray:
    if array.size != math.prod(shape):
        raise BadRequest(f"{where}.data: has {array.size} elements; shape {shape} holds {math.prod(shape)}",
                         param=f"{where}.data")  # fmt: skip
    return array.reshape(shape)


def arguments(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """tritonclient's keyword arguments for a request's `parameters`: Triton's own (priority,
    timeout, sequence_*) as its arguments, the rest as request parameters."""
    given = dict(parameters or {})
    given.pop("binary_data_output", None)
    options: dict[str, Any] = {}
    for key in list(given):
        if key in RESERVED or key.startswith("triton_"):
            raise BadRequest(f"parameters.{key}: is reserved by Triton", param=f"parameters.{key}")
        value = given[key]
        if isinstance(value, int) and not isinstance(value, bool) and not integers.fits(value):
            raise BadRequest(f"parameters.{key}: {integers.PROBLEM}", param=f"parameters.{key}")
        if key in ARGUMENTS:
            options[key] = given.pop(key)
    for key, value in options.items():
        if key in _KINDS and not _KINDS[key](value):
            raise BadRequest(f"parameters.{key}: {_PROBLEMS[key]}", param=f"parameters.{key}")
    if given:
        options["parameters"] = given
    return options


_KINDS = {
    "priority": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "timeout": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "sequence_id": lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "sequence_start": lambda v: isinstance(v, bool),
    "sequence_end": lambda v: isinstance(v, bool),
}
_PROBLEMS = {
    "priority": "must be an integer >= 0",
    "timeout": "must be an integer >= 0 (microseconds)",
    "sequence_id": "must be an integer >= 0 or a string",
    "sequence_start": "must be true or false",
    "sequence_end": "must be true or false",
}


def output(name: str, array: np.ndarray, binary: bool) -> tuple[dict[str, Any], bytes]:
    """A response tensor: its JSON entry, and its bytes when sent as binary data (else b"")."""
    datatype = np_to_triton_dtype(array.dtype) or "BYTES"
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if binary:
        if datatype == "BYTES":
            serialized = serialize_byte_tensor(array)  # one bytes object (as tritonclient.http's InferInput)
            data = serialized.item() if serialized.size else b""
        else:
            data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        entry["parameters"] = {"binary_data_size": len(data)}
        return entry, data
    entry["data"] = values(array)
    return entry, b""


def values(array: np.ndarray) -> list:
    """A tensor's elements, flat, as JSON values (BYTES as text, as Triton's HTTP API sends them)."""
    if array.dtype == np.object_:
        return [v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v) for v in array.ravel()]
    return array.ravel().tolist()
