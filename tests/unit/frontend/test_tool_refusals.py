"""Tool calling through the frontend, refused: every refusal a 400 naming its field (the model's
own refusals keep their field names)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from tests.unit.fakes.model_server import FakeTriton, generation_model, model_error
from tests.unit.frontend.tool_chat import (
    CHAT,
    TIME,
    TOOLS,
    call,
    chat,
    fake,
)

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
