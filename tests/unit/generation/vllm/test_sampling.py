import pytest
from vllm.sampling_params import RequestOutputKind

from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.vllm.sampling import to_sampling_params


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
        ({"top_k": -5}, "sampling_parameters.top_k", "top_k must be 0 (disable), or at least 1, got -5."),
        ({"min_p": 1.5}, "sampling_parameters.min_p", "min_p must be in [0, 1]"),
        ({"seed": 2**64}, "sampling_parameters.seed", "signed 64-bit integer"),
        ({"seed": -(2**64)}, "sampling_parameters.seed", "signed 64-bit integer"),
        ({"seed": 2**63}, "sampling_parameters.seed", "signed 64-bit integer"),
        ({"logit_bias": {"abc": 1}}, "sampling_parameters.logit_bias", 'keys must be token ids (integers), got "abc"'),
        ({"logit_bias": {"5": "high"}}, "sampling_parameters.logit_bias", "must be a number"),
        ({"logit_bias": {"5": True}}, "sampling_parameters.logit_bias", "must be a number"),
        ({"logit_bias": [5]}, "sampling_parameters.logit_bias", "must be an object"),
        # Wrong types that vLLM would only trip over inside add_request, as a server error.
        ({"seed": "18446744073709551616"}, "sampling_parameters.seed", "signed 64-bit integer"),
        ({"bad_words": [1]}, "sampling_parameters.bad_words", "items must be str, got 1"),
        ({"stop": ["a", 3]}, "sampling_parameters.stop", "items must be str, got 3"),
        ({"stop_token_ids": [True]}, "sampling_parameters.stop_token_ids", "items must be int"),
        ({"stop_token_ids": [2**70]}, "sampling_parameters.stop_token_ids", "signed 64-bit integer"),
        ({"extra_args": 5}, "sampling_parameters.extra_args", "must be dict or null"),
        ({"repetition_detection": 5}, "sampling_parameters.repetition_detection", "must be an object"),
        ({"repetition_detection": {"a": 1}}, "sampling_parameters.repetition_detection.a", "unknown field"),
        (
            {"repetition_detection": {"max_pattern_size": "x"}},
            "sampling_parameters.repetition_detection.max_pattern_size",
            "valid integer",
        ),
        (
            {"repetition_detection": {"max_pattern_size": 3, "min_count": 1}},
            "sampling_parameters.repetition_detection",
            "min_count must be >= 2",
        ),
    ],
)
def test_errors_name_the_field(params, field, problem):
    with pytest.raises(InvalidInput) as info:
        to_sampling_params(params, stream=False)
    assert info.value.field == field and problem in info.value.problem


def test_int64_seeds_pass():
    assert to_sampling_params({"seed": 2**63 - 1}, stream=False).seed == 2**63 - 1
    assert to_sampling_params({"seed": -(2**63)}, stream=False).seed == -(2**63)


def test_logit_bias_keys_arrive_as_json_strings_and_become_token_ids():
    # JSON object keys are always strings; vLLM wants ints (it raised TypeError in add_request).
    p = to_sampling_params({"logit_bias": {"5": 2.5, "17": -100}}, stream=False)
    assert p.logit_bias == {5: 2.5, 17: -100.0}
    # Out of OpenAI's range: refused, not clamped as vLLM's server does (silently).
    with pytest.raises(InvalidInput, match=r"\[-100, 100\]"):
        to_sampling_params({"logit_bias": {"17": -1000}}, stream=False)


def test_objects_become_vllms_own_types():
    p = to_sampling_params({"repetition_detection": {"max_pattern_size": 4, "min_count": 3}}, stream=False)
    assert (p.repetition_detection.max_pattern_size, p.repetition_detection.min_count) == (4, 3)
