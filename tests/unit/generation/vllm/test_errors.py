"""vLLM's refusals name the field they are about, from the errors vLLM 0.32 really raises.

Each error is produced by vLLM's own code (SamplingParams, its verify step, the renderer's
and the input processor's length checks), so a vLLM upgrade that rewords them shows here.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from vllm import SamplingParams
from vllm.exceptions import VLLMValidationError
from vllm.renderers.params import TokenizeParams
from vllm.v1.engine.exceptions import EngineGenerateError
from vllm.v1.engine.input_processor import InputProcessor

from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.vllm.errors import client_error, describe, field_of


def raised(fn, *args, **kwargs) -> Exception:
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        # vLLM gives no `parameter` for these: the field is the first word of its message.
        ({"top_k": -5}, "top_k"),
        ({"n": 0}, "n"),
        ({"min_p": 2.0}, "min_p"),
        ({"presence_penalty": 3.0}, "presence_penalty"),
        ({"frequency_penalty": -3.0}, "frequency_penalty"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"min_tokens": 5, "max_tokens": 2}, "min_tokens"),
        ({"stop": [""]}, "stop"),
        # ... and these carry it.
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"logprobs": -2}, "logprobs"),
    ],
)
def test_sampling_params_range_errors_name_their_field(kwargs, field):
    exc = raised(SamplingParams, **kwargs)
    assert field_of(exc, None) == f"sampling_parameters.{field}"
    # Raised in add_request, where a prompt is involved, it still names the field, not the prompt.
    error = client_error(exc, "text_input")
    assert error.field == f"sampling_parameters.{field}"
    assert "(parameter=" not in error.problem and error.problem.startswith(field)


def test_out_of_vocabulary_logit_bias_names_logit_bias():
    params = SamplingParams(logit_bias={70000: 5.0})
    exc = raised(params._validate_logit_bias, SimpleNamespace(get_vocab_size=lambda: 49152))
    error = client_error(exc, "messages")
    assert error.field == "sampling_parameters.logit_bias"
    assert "out-of-vocab" in error.problem and "70000" in error.problem


def test_min_tokens_beyond_the_context_names_min_tokens():
    # input_processor's own check when max_tokens is null (no parameter given).
    exc = VLLMValidationError("min_tokens must be less than or equal to max_tokens=8187, got 9000.")
    assert client_error(exc, "text_input").field == "sampling_parameters.min_tokens"


def test_a_prompt_over_the_context_names_the_prompt():
    exc = raised(TokenizeParams(max_total_tokens=8)._token_len_check, None, list(range(12)))
    assert exc.parameter == "input_tokens"
    assert client_error(exc, "text_input").field == "text_input"
    assert client_error(exc, "messages").field == "messages"


@pytest.mark.parametrize("length", [9, 8])
def test_the_input_processors_prompt_length_errors_name_the_prompt(length):
    processor = SimpleNamespace(
        skip_prompt_length_check=False,
        model_config=SimpleNamespace(max_model_len=8, runner_type="generate"),
        supports_mm_inputs=False,
    )
    exc = raised(InputProcessor._validate_prompt_len, processor, length, "decoder")
    assert client_error(exc, "messages").field == "messages"


def test_an_out_of_vocabulary_prompt_token_names_the_prompt():
    exc = VLLMValidationError("Token id 99999 is out of vocabulary")  # renderer.validate_token_ids
    assert client_error(exc, "text_input").field == "text_input"


def test_a_value_error_wrapped_by_generate_is_still_the_clients():
    # AsyncLLM.generate wraps every error but VLLMClientError in an EngineGenerateError.
    try:
        try:
            raise ValueError("sampling distribution replay requires temperature > 0")
        except ValueError as cause:
            raise EngineGenerateError() from cause
    except EngineGenerateError as exc:
        error = client_error(exc, "text_input")
    assert isinstance(error, InvalidInput) and error.field == "sampling_parameters"
    assert error.problem == "sampling distribution replay requires temperature > 0"


def test_an_unexpected_error_is_not_the_clients_and_says_what_failed():
    try:
        try:
            raise OverflowError("can't serialize ints < -2**63 or > 2**64 - 1")
        except OverflowError as cause:
            raise EngineGenerateError() from cause
    except EngineGenerateError as exc:
        assert client_error(exc, "text_input") is None
        assert str(exc) == ""  # why describe() exists
        assert describe(exc) == "EngineGenerateError <- OverflowError: can't serialize ints < -2**63 or > 2**64 - 1"
