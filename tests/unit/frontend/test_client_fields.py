"""The request fields of schemas/client_fields.py: what each becomes in the model's
`sampling_parameters` (docs/protocol.md), and vLLM's rules around them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.completions import CompletionRequest

CHAT = [{"role": "user", "content": "Hi"}]


def test_vllms_fields_reach_the_sampling_parameters():
    body = CompletionRequest(
        model="m", prompt="x", stop_token_ids=[2], bad_words=["blue"], allowed_token_ids=[5, 6], priority=-3,
        use_beam_search=True, length_penalty=0.5,
    )  # fmt: skip
    params = body.sampling()
    assert {k: params[k] for k in ("stop_token_ids", "bad_words", "allowed_token_ids", "priority")} == {
        "stop_token_ids": [2], "bad_words": ["blue"], "allowed_token_ids": [5, 6], "priority": -3,
    }  # fmt: skip
    assert (params["use_beam_search"], params["length_penalty"]) == (True, 0.5)
    # Defaults send nothing: a model without these keys (vllm_backend's) is asked nothing new.
    assert set(CompletionRequest(model="m", prompt="x", length_penalty=2.0).sampling()) == {"n", "max_tokens"}


def test_openais_fields_vllm_ignores_are_taken_and_sent_nowhere():
    ignored = {
        "store": True, "metadata": {"k": "v"}, "service_tier": "flex",
        "prediction": {"type": "content", "content": [{"type": "text", "text": "x"}]}, "user": "u",
    }  # fmt: skip
    chat = ChatCompletionRequest(model="m", messages=CHAT, **ignored)
    assert set(chat.sampling()) == {"n", "max_tokens"} and chat.template_kwargs() is None
    assert set(CompletionRequest(model="m", prompt="x", best_of=4, **ignored).sampling()) == {"n", "max_tokens"}
    for bad in ({"service_tier": "fast"}, {"metadata": {"k": 1}}, {"prediction": {"type": "text"}}, {"stroe": True}):
        with pytest.raises(ValidationError):
            CompletionRequest(model="m", prompt="x", **bad)


def test_reasoning_effort_is_a_template_variable_with_enable_thinking_as_vllm_sets_it():
    assert ChatCompletionRequest(model="m", messages=CHAT, reasoning_effort="none").template_kwargs() == {
        "reasoning_effort": "none", "enable_thinking": False,
    }  # fmt: skip
    mine = ChatCompletionRequest(
        model="m", messages=CHAT, reasoning_effort="high", chat_template_kwargs={"enable_thinking": False}
    )
    assert mine.template_kwargs() == {"enable_thinking": False, "reasoning_effort": "high"}


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"use_beam_search": True, "stream": True}, "use_beam_search"),
        ({"use_beam_search": True, "echo": True, "logprobs": 1}, "echo"),
    ],
)
def test_beam_search_refusals_are_vllms(fields, param):
    with pytest.raises(ValidationError) as e:
        CompletionRequest(model="m", prompt="x", **fields)
    assert param in str(e.value)
