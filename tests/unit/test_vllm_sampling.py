import pytest
from vllm.sampling_params import RequestOutputKind

from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.vllm_sampling import to_sampling_params


def test_strings_are_coerced_like_vllm_backend():
    p = to_sampling_params({"temperature": "0.5", "max_tokens": "7", "ignore_eos": "true", "top_k": 5}, stream=False)
    assert (p.temperature, p.max_tokens, p.ignore_eos, p.top_k) == (0.5, 7, True, 5)
    assert p.output_kind == RequestOutputKind.FINAL_ONLY


def test_streaming_asks_for_deltas():
    assert to_sampling_params({}, stream=True).output_kind == RequestOutputKind.DELTA


def test_structured_outputs_from_json_string():
    p = to_sampling_params({"structured_outputs": '{"json": {"type": "object"}}'}, stream=False)
    assert p.structured_outputs.json == {"type": "object"}


@pytest.mark.parametrize(
    ("params", "field", "problem"),
    [
        ({"temprature": 1}, "sampling_parameters.temprature", "unknown field"),
        ({"output_kind": 1}, "sampling_parameters.output_kind", "unknown field"),
        ({"max_tokens": -1}, "sampling_parameters.max_tokens", "at least 1"),
        ({"temperature": "hot"}, "sampling_parameters.temperature", "must be float"),
        ({"n": True}, "sampling_parameters.n", "must be int"),
        ({"stop": 3}, "sampling_parameters.stop", "must be str or list or null"),
        ({"lora_name": "x"}, "sampling_parameters.lora_name", "LoRA"),
    ],
)
def test_errors_name_the_field(params, field, problem):
    with pytest.raises(InvalidInput) as info:
        to_sampling_params(params, stream=False)
    assert info.value.field == field and problem in info.value.problem
