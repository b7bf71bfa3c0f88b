"""The protocol's inputs and outputs of ours beyond vllm_backend's: `input_ids`,
`chat_template_kwargs`, `truncate_prompt_tokens`, the prompt's logprobs and the token ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.unit.fakes.wire import inputs
from triton_llm.errors import InvalidInput
from triton_llm.generation.engines.base import prompt_field, render_prompt, truncate_prompt
from triton_llm.generation.protocol import INPUTS, OUTPUTS, build_outputs, parse_request
from triton_llm.generation.types import ChoiceDelta, GenerateRequest, GenerationChunk


def ids(*values: int, dtype=np.int64) -> np.ndarray:
    return np.array(values, dtype=dtype)


CHAT = [{"role": "user", "content": "x"}]
TRUNCATE = "sampling_parameters.truncate_prompt_tokens"


def test_the_new_tensors_are_declared():
    declared = {spec["name"]: spec for spec in INPUTS}
    assert declared["input_ids"]["data_type"] == "TYPE_INT64" and declared["input_ids"]["dims"] == [-1]
    assert {"chat_template_kwargs", "return_prompt_logprobs", "return_token_ids"} <= set(declared)
    assert {"prompt_logprobs", "prompt_token_ids", "token_ids"} <= {spec["name"] for spec in OUTPUTS}


def test_input_ids_are_the_prompt():
    req = parse_request(inputs(input_ids=ids(1, 2, 3)))
    assert req.prompt_ids == [1, 2, 3] and req.prompt is None and req.messages is None
    assert prompt_field(req) == "input_ids"


@pytest.mark.parametrize(
    ("values", "field", "problem"),
    [
        ({"input_ids": ids()}, "input_ids", "must not be empty"),
        ({"input_ids": ids(5, -1)}, "input_ids", "out of vocabulary"),
        ({"input_ids": np.array([1.0, 2.0])}, "input_ids", "integer"),
        ({"text_input": "a", "input_ids": ids(1)}, "input_ids", "not text_input and input_ids"),
        ({"messages": CHAT, "input_ids": ids(1)}, "input_ids", "one of"),
        ({"text_input": "a", "chat_template_kwargs": {"x": 1}}, "chat_template_kwargs", "messages only"),
        ({"messages": CHAT, "chat_template_kwargs": "[1]"}, "chat_template_kwargs", "JSON object"),
        ({"messages": CHAT, "chat_template_kwargs": {"tokenize": True}}, "chat_template_kwargs", "tokenize"),
        ({"text_input": "a", "sampling_parameters": {"truncate_prompt_tokens": 0}}, TRUNCATE, "at least 1"),
        ({"text_input": "a", "sampling_parameters": {"truncate_prompt_tokens": "x"}}, TRUNCATE, "must be int"),
    ],
)
def test_bad_prompt_inputs_name_their_field(values, field, problem):
    with pytest.raises(InvalidInput) as info:
        parse_request(inputs(**values))
    assert info.value.field == field and problem in info.value.problem


def test_chat_template_kwargs_and_truncation_are_parsed():
    req = parse_request(
        inputs(
            messages=CHAT,
            chat_template_kwargs={"enable_thinking": False},
            sampling_parameters={"truncate_prompt_tokens": "-1", "temperature": 0},
        )
    )
    assert req.chat_template_kwargs == {"enable_thinking": False}
    # Not a SamplingParams field in vLLM 0.32: the engines apply it when tokenizing.
    assert req.truncate_prompt_tokens == -1 and req.sampling == {"temperature": 0}


class FakeTokenizer:
    chat_template = "{{ messages }}"

    def __init__(self):
        self.calls = []

    def decode(self, ids):
        return "|".join(map(str, ids))

    def apply_chat_template(self, messages, **kwargs):
        self.calls.append(kwargs)
        return "rendered"


def test_render_prompt_decodes_ids_and_passes_the_template_variables():
    tokenizer = FakeTokenizer()
    assert render_prompt(tokenizer, GenerateRequest(prompt_ids=[4, 5])) == "4|5"
    variables = {"add_generation_prompt": False, "enable_thinking": False}
    request = GenerateRequest(messages=CHAT, chat_template_kwargs=variables)
    assert render_prompt(tokenizer, request) == "rendered"
    expected = {"add_generation_prompt": False, "enable_thinking": False, "tokenize": False}
    assert tokenizer.calls[-1] == {"tools": None, "chat_template": None, **expected}


def test_truncation_keeps_the_last_tokens_as_vllm():
    prompt = list(range(10))
    assert truncate_prompt(prompt, GenerateRequest(truncate_prompt_tokens=3), 8, True) == [7, 8, 9]
    assert truncate_prompt(prompt, GenerateRequest(truncate_prompt_tokens=20), 30, True) == prompt
    assert truncate_prompt(prompt, GenerateRequest(), 4, True) == prompt  # no truncation: the length check says no
    # -1: the context less one token of room for a decoder-only model's output.
    assert truncate_prompt(prompt, GenerateRequest(truncate_prompt_tokens=-1), 8, True) == list(range(3, 10))
    assert truncate_prompt(prompt, GenerateRequest(truncate_prompt_tokens=-1), 8, False) == list(range(2, 10))
    with pytest.raises(InvalidInput, match="cannot be greater than max_model_len=8"):
        truncate_prompt(prompt, GenerateRequest(truncate_prompt_tokens=9), 8, True)


def test_prompt_logprobs_and_token_ids_come_only_when_asked_and_prompt_parts_only_first():
    req = GenerateRequest(prompt="P", stream=True, prepend_input=False)
    prompt_logprobs = [{7: {"logprob": None, "rank": None, "decoded_token": "P"}}]
    chunk = GenerationChunk(
        prompt="P",
        num_input_tokens=1,
        choices=[ChoiceDelta(index=0, text="x", num_tokens=2, token_ids=[11, 12])],
        finished=False,
        prompt_token_ids=[7],
        prompt_logprobs=prompt_logprobs,
    )
    assert set(build_outputs(req, chunk, n=2, first=True)) == {"text_output"}
    req.returns.update(return_prompt_logprobs=True, return_token_ids=True)
    out = build_outputs(req, chunk, n=2, first=True)
    assert json.loads(out["prompt_logprobs"][0]) == [{"7": {"logprob": None, "rank": None, "decoded_token": "P"}}]
    assert out["prompt_token_ids"].dtype == np.int64 and list(out["prompt_token_ids"]) == [7]
    assert [json.loads(t) for t in out["token_ids"]] == [[11, 12], []]
    later = build_outputs(req, chunk, n=2, first=False)
    assert set(later) == {"text_output", "token_ids"}


def test_a_streamed_echo_puts_the_prompt_at_the_head_of_the_first_response_of_each_choice():
    req = parse_request(inputs(input_ids=ids(1, 2), stream=True, exclude_input_in_output=False))
    chunk = GenerationChunk(prompt="1|2", num_input_tokens=2, choices=[ChoiceDelta(index=1, text="z")], finished=False)
    assert list(build_outputs(req, chunk, n=2, first=True)["text_output"]) == [b"1|2", b"1|2z"]
    assert list(build_outputs(req, chunk, n=2, first=False)["text_output"]) == [b"", b"z"]
