"""The fake tool-calling model and the chat helpers shared by test_tools and test_tool_refusals."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import ModelInfo
from tests.unit.fakes.model_server import FakeTriton, Response, generation_model

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
