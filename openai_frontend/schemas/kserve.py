"""KServe's request bodies: the v2 protocol's inference request (`/infer`) and the v1
protocol's predict request (`:predict`), as KServe's and Triton's servers read them.

Both derive from `RequestModel`: the raw JSON's depth and lone surrogates are checked before a
field is read, and no integer beyond int64 passes (schemas.integers). A v2 tensor's `data` is
free-form (nested or flat lists, as the protocol allows): its values are checked against the
tensor's datatype when the tensor is built (serving/kserve_tensors.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from openai_frontend.errors import BadRequest
from openai_frontend.schemas.common import RequestModel, StrictModel
from openai_frontend.schemas.limits import MAX_EMBEDDING_INPUTS

# A request parameter's value, as the v2 protocol allows (bool, number or string).
Parameter = bool | int | float | str
Parameters = Annotated[dict[str, Parameter], Field(max_length=64)]
# Tensors in one request: more than any model here declares (generation models: ~25 inputs).
MAX_TENSORS = 64
# Dimensions of one tensor: as many as Triton allows by default.
MAX_DIMS = 16


class InputParameters(StrictModel):
    # The binary tensor data extension: this tensor's bytes follow the JSON, `binary_data_size` long.
    binary_data_size: int | None = Field(None, ge=0)


class OutputParameters(StrictModel):
    binary_data: bool | None = None  # send this output as binary data


class InputTensor(StrictModel):
    name: str = Field(min_length=1, max_length=256)
    shape: Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=MAX_DIMS)]
    datatype: str = Field(max_length=16)
    parameters: InputParameters | None = None
    data: Any = None


class OutputTensor(StrictModel):
    name: str = Field(min_length=1, max_length=256)
    parameters: OutputParameters | None = None


class InferenceRequest(RequestModel):
    id: str | None = Field(None, max_length=256)
    # Sent by KServe's InferenceRESTClient (InferRequest.to_rest); the path names the model, as
    # KServe's own server reads it (its schema ignores the field).
    model_name: str | None = Field(None, max_length=256)
    parameters: Parameters | None = None
    inputs: Annotated[list[InputTensor], Field(min_length=1, max_length=MAX_TENSORS)]
    outputs: Annotated[list[OutputTensor], Field(max_length=MAX_TENSORS)] | None = None


class PredictRequest(RequestModel):
    """KServe v1 `{"instances": [...]}` (or `{"inputs": [...]}`, which KServe reads the same):
    the texts, one prediction each, as KServe's Hugging Face runtime takes them."""

    instances: Annotated[list[str], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)] | None = None
    inputs: Annotated[list[str], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)] | None = None

    @property
    def texts(self) -> list[str]:
        texts = self.instances if self.instances is not None else self.inputs
        if texts is None or (self.instances is not None and self.inputs is not None):
            raise BadRequest("instances: exactly one of 'instances' and 'inputs' is required", param="instances")
        return texts
