"""Tool calling and reasoning through the frontend, on a fake Triton whose model sends the
`tool_calls` and `reasoning_output` tensors (docs/protocol.md): the tensors a request becomes,
the responses built (whole and streamed, n=2), and every refusal a 400 naming its field."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import ModelInfo
from tests.unit.fakes.model_server import FakeTriton, Response, generation_model, model_error

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}
TOOLS = [WEATHER, TIME]
CHAT = [{"role": "user", "content": "Weather in Paris, and the time?"}]


@dataclass
class ParsedResponse(Response):
    """A response of a model whose parsers are at work: calls and reasoning per choice."""

    tool_calls: list[list[dict]] | None = None
    reasoning: list[str] | None = None

    def outputs(self):
        out = super().outputs()
        if self.tool_calls is not None:
            out["tool_calls"] = np.array([json.dumps(c).encode() for c in self.tool_calls], dtype=np.object_)
        if self.reasoning is not None:
            out["reasoning_output"] = np.array([r.encode() for r in self.reasoning], dtype=np.object_)
        return out


def call(id_: str, name: str, arguments: str) -> dict:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


def piece(index: int, arguments: str, id_: str | None = None, name: str | None = None) -> dict:
    """A streamed delta of call `index`: its first carries id, type and name."""
    if id_ is None:
        return {"index": index, "function": {"arguments": arguments}}
    return {"index": index, "id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


# n=2: choice 0 thinks, then calls both tools; choice 1 calls get_time.
WHOLE = [
    ParsedResponse(
        ["", ""], ["tool_calls", "tool_calls"], [9, 6], 12,
        tool_calls=[[call("call-a", "get_weather", '{"city": "Paris"}'), call("call-b", "get_time", "{}")],
                    [call("call-c", "get_time", '{"tz": "UTC"}')]],
        reasoning=["Two tools. ", ""],
    )
]  # fmt: skip
STREAMED = [
    ParsedResponse(["", ""], ["None", "None"], [3, 0], 12, tool_calls=[[], []], reasoning=["Two ", ""]),
    ParsedResponse(
        ["", ""], ["None", "None"], [2, 3], 12, reasoning=["tools. ", ""],
        tool_calls=[[piece(0, "", "call-a", "get_weather")], [piece(0, '{"tz"', "call-c", "get_time")]],
    ),
    ParsedResponse(
        ["", ""], ["tool_calls", "tool_calls"], [4, 3], 12, reasoning=["", ""],
        tool_calls=[[piece(0, '{"city": "Paris"}'), piece(1, "{}", "call-b", "get_time")], [piece(0, ': "UTC"}')]],
    ),
]  # fmt: skip


def tool_model(name: str = "gen") -> ModelInfo:
    """A model of ours that declares the tool tensors (whatever protocol.py lists today)."""
    info = generation_model(name)
    return replace(
        info,
        inputs=info.inputs | {"tools", "tool_choice", "parallel_tool_calls"},
        outputs=info.outputs | {"tool_calls", "reasoning_output"},
    )


def answer(model: str, values: dict) -> list[ParsedResponse]:
    """WHOLE or STREAMED, with as many choices as the request asked for."""
    n = values["sampling_parameters"]["n"]
    per_choice = ("texts", "finish_reasons", "num_output_tokens", "tool_calls", "reasoning")
    steps = STREAMED if values["stream"] else WHOLE
    return [replace(step, **{name: getattr(step, name)[:n] for name in per_choice}) for step in steps]


def fake(script=answer) -> FakeTriton:
    return FakeTriton(models_=[tool_model()], script=script)


def chat(triton: FakeTriton, **fields):
    return TestClient(create_app(client=triton)).post(
        "/openai/v1/chat/completions", json={"model": "gen", "messages": CHAT, **fields}
    )


def events(text: str) -> list[dict]:
    parts = [p.removeprefix("data: ") for p in text.split("\n\n") if p]
    assert parts[-1] == "[DONE]", text
    return [json.loads(p) for p in parts[:-1]]


def assemble(chunks: list[dict]) -> dict[int, list[dict]]:
    """A client's assembly of streamed calls: per choice, per call index, id/type/name once and
    the arguments concatenated."""
    calls: dict[int, list[dict]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for delta in choice["delta"].get("tool_calls", []):
                per_choice = calls.setdefault(choice["index"], [])
                while len(per_choice) <= delta["index"]:
                    per_choice.append({"id": None, "type": None, "function": {"name": None, "arguments": ""}})
                whole = per_choice[delta["index"]]
                whole["id"] = delta.get("id") or whole["id"]
                whole["type"] = delta.get("type") or whole["type"]
                function = delta.get("function", {})
                whole["function"]["name"] = function.get("name") or whole["function"]["name"]
                whole["function"]["arguments"] += function.get("arguments") or ""
    return calls


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


# -- refusals ----------------------------------------------------------------------------


def test_a_model_without_the_tool_tensors_is_a_400_naming_tools():
    plain = generation_model("plain")
    triton = FakeTriton(models_=[replace(plain, inputs=plain.inputs - {"tools", "tool_choice", "parallel_tool_calls"})])
    r = TestClient(create_app(client=triton)).post(
        "/openai/v1/chat/completions", json={"model": "plain", "messages": CHAT, "tools": TOOLS, "tool_choice": "auto"}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools", r.text
    assert triton.requests == []


@pytest.mark.parametrize(
    ("fields", "param"), [({"add_generation_prompt": False}, "add_generation_prompt"),
                          ({"add_generation_prompt": False, "continue_final_message": True}, "continue_final_message")]
)  # fmt: skip
def test_a_model_without_template_variables_names_the_field_that_needs_them(fields, param):
    plain = generation_model("plain")
    triton = FakeTriton(models_=[replace(plain, inputs=plain.inputs - {"chat_template_kwargs"})])
    r = TestClient(create_app(client=triton)).post(
        "/openai/v1/chat/completions", json={"model": "plain", "messages": CHAT, **fields}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


ASSISTANT_CALL = {"role": "assistant", "tool_calls": [call("c", "get_time", "{}")]}


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"tools": []}, "tools", "must not be an empty array"),
        ({"tool_choice": "auto"}, "tool_choice", "`tools` must be set"),
        ({"tool_choice": "required"}, "tool_choice", "`tools` must be set"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice",
         "does not match any of the specified `tools`"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name", ""),
        ({"tools": TOOLS, "tool_choice": "any"}, "tool_choice", ""),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools.0.function.name", "pattern"),
        ({"tools": [{"type": "function", "function": {"name": "x" * 65}}]}, "tools.0.function.name", "pattern"),
        ({"tools": [{"type": "code", "function": {"name": "x"}}]}, "tools.0.type", ""),
        ({"tools": [{"function": {"name": "x", "parameters": []}}]}, "tools.0.function.parameters", ""),
        ({"tools": [TIME] * 129}, "tools", "at most 128"),
        ({"parallel_tool_calls": "maybe"}, "parallel_tool_calls", ""),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_time"}},
          "structured_outputs": {"regex": "a+"}}, "structured_outputs", "not both"),
        ({"messages": [{"role": "tool", "content": "sunny"}]}, "messages.0.tool_call_id", "required"),
        ({"messages": [{**CHAT[0], "tool_calls": ASSISTANT_CALL["tool_calls"]}]}, "messages.0.tool_calls",
         "only an assistant"),
        ({"messages": [{**ASSISTANT_CALL, "tool_calls": [{"id": "c", "type": "function",
          "function": {"name": "f", "arguments": {"a": 1}}}]}]}, "messages.0.tool_calls.0.function.arguments", ""),
        ({"messages": [{**ASSISTANT_CALL, "tool_calls": [{"type": "function", "function": {"name": "f",
          "arguments": "{}"}}]}]}, "messages.0.tool_calls.0.id", ""),
        ({"add_generation_prompt": True, "continue_final_message": True}, "continue_final_message", "Cannot set both"),
        ({"continue_final_message": True}, "continue_final_message", "Cannot set both"),  # the default is true
        ({"chat_template_kwargs": {"continue_final_message": True}}, "chat_template_kwargs", "Cannot set both"),
        ({"add_generation_prompt": None}, "add_generation_prompt", ""),
    ],
)  # fmt: skip
def test_bad_tool_and_template_fields_are_400s_naming_them(fields, param, says):
    triton = fake()
    r = chat(triton, **fields)
    error = r.json()["error"]
    assert r.status_code == 400 and error["param"] == param and says in error["message"], r.text
    assert triton.requests == []


@pytest.mark.parametrize(
    "fields",
    [
        {"tool_choice": "none"},
        {"tools": TOOLS, "tool_choice": "none"},
        {"tools": TOOLS, "structured_outputs": {"regex": "a+"}},  # vLLM: with auto, a constraint is fine
        {"tools": TOOLS, "response_format": {"type": "json_object"}},
        {"messages": [*CHAT, ASSISTANT_CALL, {"role": "tool", "tool_call_id": "c", "content": "12:00"}]},
        {"messages": [*CHAT, {"role": "assistant", "content": "The weather is"}], "add_generation_prompt": False,
         "continue_final_message": True},
        {"tools": [{"type": "function", "function": {"name": "A-z_09", "strict": True, "parameters": {}}}]},
    ],
)  # fmt: skip
def test_what_vllm_accepts_is_accepted(fields):
    assert chat(fake(), **fields).status_code == 200


@pytest.mark.parametrize(
    "param",
    ["tools", "tool_choice", "tools[0].function.name", "messages[2].tool_calls[0].function.arguments",
     "parallel_tool_calls"],
)  # fmt: skip
def test_the_models_refusals_keep_their_field_names(param):
    r = chat(fake(lambda m, v: [model_error(param, "is wrong")]), tools=TOOLS)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
