"""`max_tokens` beyond the context is refused by both engines, and the client hears its own field's name."""

from __future__ import annotations

import pytest

from openai_frontend.errors import InvalidField
from openai_frontend.serving.fields import for_endpoint
from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.limits import check_max_tokens


@pytest.mark.parametrize(
    ("max_tokens", "prompt_tokens"),
    [(None, 10), (22, 10), (1, 31), (5, 32), (5, 40), (32, None)],
)
def test_what_fits_or_is_the_prompts_problem_passes(max_tokens, prompt_tokens):
    # null is "up to the context"; a prompt that fills the context is refused by the prompt check.
    check_max_tokens(max_tokens, prompt_tokens, 32, "prompt")


def test_beyond_the_context_names_max_tokens_and_the_limit():
    with pytest.raises(InvalidInput) as info:
        check_max_tokens(100000, 12, 8192, "messages")
    assert info.value.field == "sampling_parameters.max_tokens"
    assert info.value.problem == (
        "This model's maximum context length is 8192 tokens. However, you requested 100012 tokens "
        "(12 in the messages, 100000 in the completion). Please reduce the length of the messages or completion."
    )


def test_an_encoder_decoder_counts_the_completion_only():
    with pytest.raises(InvalidInput, match="maximum context length is 512 tokens. However, you requested 513 tokens"):
        check_max_tokens(513, None, 512, "prompt")


@pytest.mark.parametrize(
    ("sent", "param"), [(None, "max_tokens"), ({"max_tokens": "max_completion_tokens"}, "max_completion_tokens")]
)
def test_the_frontend_names_the_field_the_client_sent(sent, param):
    error = for_endpoint(InvalidField("sampling_parameters.max_tokens", "too many"), "chat", sent=sent)
    assert (error.param, error.message) == (param, f"{param}: too many")
