"""Anthropic's Messages API without a server: the request as the chat request that serves it,
the answer as Anthropic's message and events (parsed by the official `anthropic` SDK, over
the app's ASGI transport), and every error in Anthropic's shape naming the field."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.schemas.messages import MessagesRequest
from openai_frontend.serving.messages_chat import chat_request
from openai_frontend.settings import Settings
from tests.unit.fakes.model_server import FakeTriton, Response, model_error
from tests.unit.frontend.tool_chat import ParsedResponse, call, piece

if TYPE_CHECKING:
    import anthropic

ASK = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def app(script, **settings) -> tuple[FakeTriton, TestClient]:
    fake = FakeTriton(script=lambda model, values: script(values))
    return fake, TestClient(create_app(Settings(**settings), client=fake), raise_server_exceptions=False)


def sdk(client: TestClient) -> anthropic.Anthropic:
    import anthropic  # 3 s to import: paid by the worker that runs these tests, not by every collection

    return anthropic.Anthropic(base_url="http://testserver/openai", api_key="k", http_client=client, max_retries=0)


def test_a_request_becomes_the_chat_request_vllm_makes_of_it():
    body = MessagesRequest.model_validate({
        "model": "gen", "max_tokens": 9,
        "system": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        "messages": [
            *ASK,
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                              {"type": "text", "text": "Looking."},
                                              {"type": "tool_use", "id": "t1", "name": "get_weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "text", "text": "sunny"}]},
                                         {"type": "text", "text": "And so?"}]},
        ],
        "tools": [WEATHER], "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"], "top_k": 0, "temperature": 0, "metadata": {"user_id": "u"},
        "thinking": {"type": "disabled"},
    })  # fmt: skip
    chat = chat_request(body)
    assert [m.for_template() for m in chat.messages] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "t1"},  # the result first, then the user's text
        {"role": "user", "content": "And so?"},
    ]  # fmt: skip
    assert chat.tool_inputs()["tool_choice"] == '"required"' and chat.parallel_tool_calls is False
    assert chat.tools[0].function.parameters == WEATHER["input_schema"]
    assert chat.stop == ["END"] and chat.include_stop_str_in_output  # cut by the frontend, named in stop_sequence
    assert chat.top_k is None and chat.user == "u" and chat.chat_template_kwargs == {"enable_thinking": False}
    named = {**body.model_dump(exclude_none=True), "tool_choice": {"type": "tool", "name": "get_weather"}}
    named = chat_request(MessagesRequest.model_validate(named))
    assert named.tool_inputs()["tool_choice"] == json.dumps({"type": "function", "function": {"name": "get_weather"}})


def test_image_blocks_are_chats_image_parts_in_their_place():
    png = {"type": "base64", "media_type": "image/png", "data": "iVBOR"}
    body = MessagesRequest.model_validate({"model": "gen", "max_tokens": 9, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "image", "source": png},
                                     {"type": "text", "text": "this?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "look", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "a cat"}, {"type": "image", "source": {"type": "url", "url": "https://x/c.png"}}]}]},
    ]})  # fmt: skip
    user, _, tool, images = [m.model_dump(exclude_none=True) for m in chat_request(body).messages]
    assert [p["type"] for p in user["content"]] == ["text", "image_url", "text"]
    assert user["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBOR"
    assert (tool["content"], images["role"]) == ("a cat", "user")  # vLLM's: the result's images follow it
    assert images["content"] == [{"type": "image_url", "image_url": {"url": "https://x/c.png"}}]


def test_a_message_with_a_stop_sequence_and_its_events_through_the_sdk():
    def script(values):
        assert values["sampling_parameters"]["include_stop_str_in_output"]
        if not values["stream"]:
            return [Response(["Hello END"], ["stop"], [3], 5)]
        return [Response(["Hel"], ["None"], [1], 5), Response(["lo EN"], ["None"], [1], 5),
                Response(["D"], ["stop"], [1], 5)]  # fmt: skip

    client = sdk(app(script)[1])
    fields = {"model": "gen", "max_tokens": 9, "messages": ASK, "stop_sequences": ["END"]}
    out = client.messages.create(**fields)
    assert [(b.type, b.text) for b in out.content] == [("text", "Hello ")]
    assert (out.stop_reason, out.stop_sequence, out.usage.input_tokens, out.usage.output_tokens) == (
        "stop_sequence",
        "END",
        5,
        3,
    )
    with client.messages.stream(**fields) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.content[0].text == "Hello " and (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 3)
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "message_delta" in kinds


def test_reasoning_and_tool_calls_are_thinking_and_tool_use_blocks_whole_and_streamed():
    def script(values):
        if not values["stream"]:
            return [ParsedResponse([""], ["tool_calls"], [7], 4, reasoning=["Paris?"],
                                   tool_calls=[[call("c1", "get_weather", '{"city": "Paris"}')]])]  # fmt: skip
        return [
            ParsedResponse([""], ["None"], [2], 4, reasoning=["Paris?"], tool_calls=[[]]),
            ParsedResponse([""], ["None"], [2], 4, tool_calls=[[piece(0, '{"city": ', "c1", "get_weather")]]),
            ParsedResponse([""], ["tool_calls"], [3], 4, tool_calls=[[piece(0, '"Paris"}')]]),
        ]

    client = sdk(app(script)[1])
    fields = {"model": "gen", "max_tokens": 9, "messages": ASK, "tools": [WEATHER], "thinking": {"type": "adaptive"}}
    out = client.messages.create(**fields)
    assert [b.type for b in out.content] == ["thinking", "tool_use"] and out.stop_reason == "tool_use"
    assert out.content[0].thinking == "Paris?" and out.content[0].signature
    assert (out.content[1].id, out.content[1].name, out.content[1].input) == ("c1", "get_weather", {"city": "Paris"})
    with client.messages.stream(**fields) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert deltas == ["thinking_delta", "signature_delta", "input_json_delta", "input_json_delta"]
    assert [b.type for b in final.content] == ["thinking", "tool_use"] and final.stop_reason == "tool_use"
    assert final.content[1].input == {"city": "Paris"} and final.usage.output_tokens == 7


def test_count_tokens_counts_the_prompt_the_chat_would_render():
    fake, client = app(lambda values: [Response([""], prompt_token_ids=[1, 2, 3])])
    got = sdk(client).messages.count_tokens(model="gen", messages=ASK, system="Be brief.", tools=[WEATHER])
    assert got.input_tokens == 3
    (sent,) = fake.requests
    assert sent["tokenize_only"] and sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 1.5}, "temperature"),
        ({"stop_sequence": ["x"]}, "stop_sequence: Extra inputs"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}]},
            "messages.0.content.0.type",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content.0: a text block needs"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
                ]
            },
            "messages.0.content.0.source: give",
        ),
        (  # a text-only model: chat's refusal of its image part
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}]},
            "messages.0.content.0.image_url: the model 'gen' takes no images",
        ),
        ({"tool_choice": {"type": "tool", "name": "nope"}, "tools": [WEATHER]}, "tool_choice.name"),
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"tools": [{"name": "bad name", "input_schema": {}}]}, "tools.0.name"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking.budget_tokens"),
    ],
)
def test_bad_input_is_a_400_in_anthropics_shape_naming_the_field(fields, named):
    _, client = app(lambda values: [Response(["x"], ["stop"], [1], 3)])
    body = {k: v for k, v in {"model": "gen", "max_tokens": 9, "messages": ASK, **fields}.items() if v is not None}
    r = client.post("/openai/v1/messages", json=body)
    assert r.status_code == 400 and r.json()["type"] == "error", r.text
    assert r.json()["error"]["type"] == "invalid_request_error" and r.json()["error"]["message"].startswith(named), (
        r.text
    )


def test_every_refusal_on_these_routes_is_in_anthropics_shape():
    def script(values):
        if values["stream"]:
            return [Response(["a"], ["None"], [1], 3), model_error("sampling_parameters.stop", "boom")]
        return [model_error("sampling_parameters.stop", "too many")]

    _, client = app(script, max_body_bytes=2000)
    body = {"model": "gen", "max_tokens": 9, "messages": ASK}
    r = client.post("/openai/v1/messages", json={**body, "messages": [{"role": "user", "content": "x" * 3000}]})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    r = client.post("/openai/v1/messages", json={**body, "model": "nope"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = client.post("/openai/v1/messages", json=body)  # the model's refusal, by the client's name of the field
    assert (r.status_code, r.json()["error"]["message"]) == (400, "stop_sequences: too many")
    r = client.post("/openai/v1/messages/count_tokens", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("The request body is not valid JSON")
    r = client.post("/openai/v1/messages", json={**body, "stream": True})  # after the first event: an error event
    assert r.text.rstrip().endswith(
        'event: error\ndata: {"type":"error","error":{"type":"invalid_request_error","message":"stop_sequences: boom"}}'
    )
    # The OpenAI routes keep OpenAI's shape.
    assert "param" in client.post("/openai/v1/chat/completions", json={"model": "gen"}).json()["error"]
