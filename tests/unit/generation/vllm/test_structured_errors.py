"""vLLM's structured-output refusals name no field; ours name `structured_outputs` by where they
were raised (engines/vllm/errors.py), so that a regex or schema vLLM cannot compile is the client's 400."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

from vllm import SamplingParams  # noqa: E402
from vllm.exceptions import VLLMValidationError  # noqa: E402
from vllm.sampling_params import StructuredOutputsParams  # noqa: E402
from vllm.v1.structured_output.backend_xgrammar import validate_xgrammar_grammar  # noqa: E402

from triton_llm.generation.engines.vllm.errors import client_error  # noqa: E402


@pytest.mark.parametrize("structured", [{"regex": "("}, {"json": "not json"}, {"grammar": "x"}])
def test_a_constraint_vllm_cannot_compile_names_structured_outputs(structured):
    params = SamplingParams(structured_outputs=StructuredOutputsParams(**structured))
    with pytest.raises(VLLMValidationError) as info:
        validate_xgrammar_grammar(params)
    error = client_error(info.value, "text_input")
    assert error is not None and error.field == "sampling_parameters.structured_outputs"


def test_other_refusals_without_a_field_keep_the_generic_name():
    try:
        raise VLLMValidationError("Something vLLM did not like")
    except VLLMValidationError as exc:
        assert client_error(exc, "text_input").field == "sampling_parameters"
