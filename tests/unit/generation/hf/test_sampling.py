import pytest

from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.hf.sampling import to_hf_sampling


def test_defaults_are_vllms():
    s = to_hf_sampling({})
    assert (s.n, s.max_tokens, s.temperature, s.top_p, s.top_k, s.stop) == (1, 16, 1.0, 1.0, 0, [])


def test_fields_and_string_numbers_are_read():
    s = to_hf_sampling({"temperature": "0.7", "top_k": -1, "top_p": 0.9, "max_tokens": None, "stop": "\n", "n": 2})
    assert (s.temperature, s.top_k, s.top_p, s.max_tokens, s.stop, s.n) == (0.7, 0, 0.9, None, ["\n"], 2)
    assert to_hf_sampling({"temperature": 0}).greedy


@pytest.mark.parametrize(
    "params,field",
    [
        ({"seed": 3}, "seed"),
        ({"logprobs": 0}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"repetition_penalty": 1.2}, "repetition_penalty"),
        ({"bogus": 1}, "bogus"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 1.5}, "n"),
        ({"stop": [1]}, "stop"),
        ({"ignore_eos": "yes"}, "ignore_eos"),
    ],
)
def test_errors_name_the_field(params, field):
    with pytest.raises(InvalidInput) as info:
        to_hf_sampling(params)
    assert info.value.field == f"sampling_parameters.{field}"


def test_neutral_values_of_unsupported_fields_pass():
    to_hf_sampling({"presence_penalty": 0, "frequency_penalty": 0.0, "repetition_penalty": 1, "seed": None})
