import json

import numpy as np
import pytest

from triton_llm.errors import InvalidInput
from triton_llm.generation.protocol import build_outputs, parse_request
from triton_llm.generation.types import ChoiceDelta, GenerateRequest, GenerationChunk


def inputs(**values):
    arrays = {}
    for name, value in values.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        arrays[name] = np.array(
            [value.encode() if isinstance(value, str) else value], dtype=object if isinstance(value, str) else bool
        )
    return arrays.get


def test_defaults_follow_vllm_backend():
    req = parse_request(inputs(text_input="Hi"))
    assert req.prompt == "Hi" and not req.stream and req.prepend_input
    assert req.sampling == {} and not any(req.returns.values())


def test_streaming_prepends_only_when_asked():
    assert not parse_request(inputs(text_input="Hi", stream=True)).prepend_input
    # Ours (vllm_backend refuses it): the first streamed response starts with the prompt.
    assert parse_request(inputs(text_input="Hi", stream=True, exclude_input_in_output=False)).prepend_input


def test_sampling_from_tensor_wins_over_request_parameters():
    req = parse_request(inputs(text_input="Hi", sampling_parameters={"top_k": 3}), json.dumps({"top_k": 9}))
    assert req.sampling == {"top_k": 3}


def test_generate_endpoint_parameters_drop_the_flags_they_carry():
    params = json.dumps({"temperature": 0, "stream": False, "return_num_input_tokens": True})
    assert parse_request(inputs(text_input="Hi"), params).sampling == {"temperature": 0}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "text_input"),
        ({"text_input": ""}, "text_input"),
        ({"text_input": "a", "messages": [{"role": "user", "content": "b"}]}, "messages"),
        ({"messages": "not json"}, "messages"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0].image_url"),
        ({"text_input": "a", "sampling_parameters": "[1]"}, "sampling_parameters"),
    ],
)
def test_bad_inputs_name_their_field(values, field):
    with pytest.raises(InvalidInput) as info:
        parse_request(inputs(**values))
    assert info.value.field == field


def test_text_parts_are_joined():
    req = parse_request(
        inputs(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    )
    assert req.messages == [{"role": "user", "content": "ab"}]


def test_outputs_keep_choice_positions_and_only_requested_extras():
    req = GenerateRequest(prompt="P", prepend_input=True)
    req.returns.update(return_num_output_tokens=True, return_finish_reason=True)
    chunk = GenerationChunk(
        prompt="P",
        num_input_tokens=1,
        choices=[ChoiceDelta(index=1, text="x", num_tokens=1, finish_reason="stop")],
        finished=False,
    )
    out = build_outputs(req, chunk, n=2, first=True)
    assert list(out["text_output"]) == [b"P", b"Px"]
    assert list(out["num_output_tokens"]) == [0, 1]
    assert list(out["finish_reason"]) == [b"None", b"stop"]
    assert set(out) == {"text_output", "num_output_tokens", "finish_reason"}
    assert list(build_outputs(req, chunk, n=2, first=False)["text_output"]) == [b"", b"x"]


def test_sparse_outputs_send_counts_and_reasons_only_where_they_change():
    req = parse_request(inputs(text_input="P", stream=True, sparse_outputs=True, return_finish_reason=True,
                               return_num_input_tokens=True, return_num_output_tokens=True))  # fmt: skip
    assert req.sparse_outputs

    def chunk(reason=None):
        delta = ChoiceDelta(index=0, text="x", num_tokens=1, finish_reason=reason)
        return GenerationChunk(prompt="P", num_input_tokens=7, choices=[delta], finished=reason is not None)

    assert set(build_outputs(req, chunk(), n=1, first=True)) == {"text_output", "num_output_tokens", "num_input_tokens"}
    assert set(build_outputs(req, chunk(), n=1, first=False)) == {"text_output", "num_output_tokens"}
    last = build_outputs(req, chunk("length"), n=1, first=False)
    assert set(last) == {"text_output", "num_output_tokens", "finish_reason"}
    assert list(last["finish_reason"]) == [b"length"]
    # One non-streamed response carries everything, as without the flag.
    req.stream = False
    assert "num_input_tokens" in build_outputs(req, chunk("stop"), n=1, first=False)


TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
USER = [{"role": "user", "content": "Weather?"}]


def test_tools_default_to_auto_and_bare_choices_are_taken():
    req = parse_request(inputs(messages=USER, tools=[TOOL]))
    assert req.tools == [TOOL] and req.tool_choice == "auto" and req.parallel_tool_calls is None
    assert parse_request(inputs(messages=USER, tools=[TOOL], tool_choice="required")).tool_choice == "required"
    named = {"type": "function", "function": {"name": "get_weather"}}
    req = parse_request(inputs(messages=USER, tools=[TOOL], tool_choice=named, parallel_tool_calls=False))
    assert req.tool_choice == named and req.parallel_tool_calls is False


def test_earlier_calls_reach_the_template_with_decoded_arguments():
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    messages = [*USER, {"role": "assistant", "content": None, "tool_calls": [call]}]
    messages.append({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
    req = parse_request(inputs(messages=messages, tools=[TOOL]))
    assert req.messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert req.messages[1]["content"] == "" and req.messages[2]["tool_call_id"] == "c1"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"text_input": "a", "tools": [TOOL]}, "tools"),
        ({"messages": USER, "tools": {"a": 1}}, "tools"),
        ({"messages": USER, "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"messages": USER, "tools": [{"type": "code"}]}, "tools[0]"),
        ({"messages": USER, "tool_choice": "required"}, "tool_choice"),
        ({"messages": USER, "tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        (
            {"messages": USER, "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_bad_tool_inputs_name_their_field(values, field):
    with pytest.raises(InvalidInput) as info:
        parse_request(inputs(**values))
    assert info.value.field == field


def test_parsed_outputs_are_sent_only_when_the_chat_layer_asks():
    req = GenerateRequest(messages=USER, prepend_input=False)
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    chunk = GenerationChunk("", 3, [ChoiceDelta(0, "", 2, "tool_calls", reasoning="hmm", tool_calls=[call])], True)
    assert "tool_calls" not in build_outputs(req, chunk, 1, True)
    req.returns_tool_calls = req.returns_reasoning = True
    out = build_outputs(req, chunk, 2, True)
    assert [json.loads(v) for v in out["tool_calls"]] == [[call], []]
    assert list(out["reasoning_output"]) == [b"hmm", b""]
