"""Tool calling and reasoning through the frontend, on a fake Triton whose model sends the
`tool_calls` and `reasoning_output` tensors (docs/protocol.md): the tensors a request becomes,
the responses built (whole and streamed, n=2), and every refusal a 400 naming its field."""

from __future__ import annotations

import json

import pytest

from tests.unit.frontend.tool_chat import (
    CHAT,
    TOOLS,
    WHOLE,
    ParsedResponse,
    assemble,
    call,
    chat,
    events,
    fake,
)

# -- what the model is sent --------------------------------------------------------------


def test_tools_tool_choice_and_parallel_tool_calls_are_sent_as_the_protocol_says():
    triton = fake()
    named = {"type": "function", "function": {"name": "get_time"}}
    assert chat(triton, tools=TOOLS, tool_choice=named, parallel_tool_calls=False).status_code == 200
    sent = triton.requests[-1]
    assert sent["tools"] == TOOLS  # unset fields (strict, description) are left out
    assert json.loads(sent["tool_choice"]) == named and sent["parallel_tool_calls"] is False
    chat(triton, tools=TOOLS, tool_choice="required")
    assert triton.requests[-1]["tool_choice"] == '"required"'  # JSON, a string too
    chat(triton, tools=TOOLS)  # the model's default ("auto") is not spelt out
    assert "tool_choice" not in triton.requests[-1] and "parallel_tool_calls" not in triton.requests[-1]


@pytest.mark.parametrize("fields", [{}, {"tool_choice": "none"}, {"parallel_tool_calls": True}])
def test_without_tools_nothing_of_them_is_sent(fields):
    # vLLM accepts "none" and parallel_tool_calls without tools and ignores them: so do we.
    triton = fake()
    assert chat(triton, **fields).status_code == 200
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & triton.requests[-1].keys()


def test_tool_and_assistant_messages_go_to_the_model():
    triton = fake()
    messages = [
        *CHAT,
        {"role": "assistant", "content": None, "tool_calls": [call("call-a", "get_weather", '{"city": "Paris"}')]},
        {"role": "tool", "tool_call_id": "call-a", "content": [{"type": "text", "text": "sunny"}], "name": "x"},
    ]
    assert chat(triton, messages=messages, tools=TOOLS).status_code == 200
    assert json.loads(json.dumps(triton.requests[-1]["messages"])) == [
        {"role": "user", "content": CHAT[0]["content"]},
        {"role": "assistant", "content": "", "tool_calls": [call("call-a", "get_weather", '{"city": "Paris"}')]},
        {"role": "tool", "content": "sunny", "name": "x", "tool_call_id": "call-a"},
    ]


@pytest.mark.parametrize(
    ("fields", "kwargs"),
    [
        ({"add_generation_prompt": True}, None),  # the default, given: nothing to send
        ({"add_generation_prompt": False}, {"add_generation_prompt": False}),
        ({"add_generation_prompt": False, "continue_final_message": True},
         {"add_generation_prompt": False, "continue_final_message": True}),
        # vLLM's fields win over the same variables in chat_template_kwargs
        ({"chat_template_kwargs": {"add_generation_prompt": False, "x": 1}, "add_generation_prompt": True},
         {"add_generation_prompt": True, "x": 1}),
        ({"chat_template_kwargs": {"add_generation_prompt": False}}, {"add_generation_prompt": False}),
    ],
)  # fmt: skip
def test_vllms_template_fields_are_sent_in_chat_template_kwargs(fields, kwargs):
    triton = fake()
    assert chat(triton, **fields).status_code == 200
    assert triton.requests[-1].get("chat_template_kwargs") == kwargs


# -- the responses -----------------------------------------------------------------------


def test_whole_response_carries_calls_reasoning_and_null_content():
    out = chat(fake(), tools=TOOLS, n=2).json()
    first, second = (c["message"] for c in out["choices"])
    assert first == {
        "role": "assistant",
        "content": None,
        "tool_calls": WHOLE[0].tool_calls[0],
        "reasoning_content": "Two tools. ",
        "reasoning": "Two tools. ",
    }
    assert second == {"role": "assistant", "content": None, "tool_calls": WHOLE[0].tool_calls[1]}
    assert [c["finish_reason"] for c in out["choices"]] == ["tool_calls", "tool_calls"]
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 15, "total_tokens": 27}


def test_a_whole_answer_without_calls_has_its_content_and_no_tool_calls():
    answer = [ParsedResponse(["Sunny."], ["stop"], [2], 5, tool_calls=[[]], reasoning=[""])]
    out = chat(fake(lambda m, v: answer), tools=TOOLS).json()
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Sunny."}
    assert out["choices"][0]["finish_reason"] == "stop"


def test_streamed_deltas_assemble_to_the_whole_calls_and_reasoning():
    whole = chat(fake(), tools=TOOLS, n=2).json()["choices"]
    chunks = events(chat(fake(), tools=TOOLS, n=2, stream=True, stream_options={"include_usage": True}).text)
    assert [c["choices"] for c in chunks[:1]] == [
        [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
         for i in range(2)]
    ]  # fmt: skip
    assert assemble(chunks) == {c["index"]: c["message"]["tool_calls"] for c in whole}
    reasoning = {0: "", 1: ""}
    for chunk in chunks[1:]:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            assert "content" not in delta and "role" not in delta  # no text: no content
            assert delta.get("reasoning_content") == delta.get("reasoning")
            reasoning[choice["index"]] += delta.get("reasoning_content", "")
    assert reasoning == {0: "Two tools. ", 1: ""}
    # The first step brought only reasoning, of choice 0: a chunk of that choice alone.
    assert chunks[1]["choices"] == [
        {"index": 0, "delta": {"reasoning_content": "Two ", "reasoning": "Two "}, "logprobs": None,
         "finish_reason": None}
    ]  # fmt: skip
    finishes = [c["finish_reason"] for chunk in chunks for c in chunk["choices"] if c["finish_reason"]]
    assert finishes == ["tool_calls", "tool_calls"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 15


def test_streamed_content_comes_only_when_there_is_some():
    steps = [
        ParsedResponse(["", ""], ["None", "None"], [1, 1], 4, reasoning=["Hm", ""]),
        ParsedResponse(["Hi", ""], ["None", "None"], [1, 0], 4, reasoning=["", ""]),
        ParsedResponse(["", ""], ["stop", "length"], [0, 0], 4, reasoning=["", ""]),
    ]
    chunks = events(chat(fake(lambda m, v: steps), n=2, stream=True).text)
    deltas = [(c["index"], c["delta"], c["finish_reason"]) for chunk in chunks[1:] for c in chunk["choices"]]
    assert deltas == [
        (0, {"reasoning_content": "Hm", "reasoning": "Hm"}, None),
        (0, {"content": "Hi"}, None),
        (0, {}, "stop"),
        (1, {}, "length"),
    ]
    whole = chat(fake(lambda m, v: [ParsedResponse(["Hi", ""], ["stop", "length"], [2, 1], 4, reasoning=["Hm", ""])]),
                 n=2).json()  # fmt: skip
    assert [c["message"] for c in whole["choices"]] == [
        {"role": "assistant", "content": "Hi", "reasoning_content": "Hm", "reasoning": "Hm"},
        {"role": "assistant", "content": ""},
    ]


def test_a_whole_answer_that_only_reasoned_has_null_content():
    answer = [ParsedResponse([""], ["length"], [8], 4, reasoning=["Let me see"])]
    message = chat(fake(lambda m, v: answer)).json()["choices"][0]["message"]
    assert message == {"role": "assistant", "content": None, "reasoning_content": "Let me see",
                       "reasoning": "Let me see"}  # fmt: skip
