"""/v1/responses without a server: the mapping onto chat's request, the output items and the
event sequence (vLLM's order) built from the parsers' deltas, exact usage, and the stored state
(previous_response_id, retrieve, input items, delete, background, cancel) in a SQLite file,
through `create_app(client=fake)`."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.settings import Settings
from tests.unit.fakes.model_server import FakeTriton, Response, model_error
from tests.unit.frontend.tool_chat import ParsedResponse, piece, tool_model

V1 = "/openai/v1/responses"
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def serve(tmp_path, script, **settings):
    fake = FakeTriton(models_=[tool_model("gen")], script=script)
    app = create_app(Settings(responses_store=f"sqlite:///{tmp_path / 'r.sqlite'}", **settings), client=fake)
    return fake, app


def text_steps(*pieces: str, prompt: int = 7, reason: str = "stop") -> list[Response]:
    steps = [Response([p], ["None"], [1], prompt) for p in pieces]
    steps[-1].finish_reasons = [reason]
    return steps


def sse(text: str) -> list[dict]:
    out = []
    for block in text.strip().split("\n\n"):
        kind, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {event['type']}"
        out.append(event)
    return out


def test_a_string_input_is_one_user_message_and_the_answer_an_output_message(tmp_path):
    fake, app = serve(tmp_path, lambda m, v: text_steps("Hel", "lo"))
    with TestClient(app) as client:
        r = client.post(V1, json={"model": "gen", "input": "Hi", "instructions": "Be brief.", "max_output_tokens": 9})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "response" and body["status"] == "completed" and body["id"].startswith("resp_")
    [item] = body["output"]
    assert item["type"] == "message" and item["content"][0]["text"] == "Hello"
    assert body["usage"] == {
        "input_tokens": 7, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 9,
    }  # fmt: skip
    sent = fake.requests[0]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert sent["sampling_parameters"]["max_tokens"] == 9


def test_events_follow_vllms_order_with_reasoning_then_text_then_a_call(tmp_path):
    steps = [
        ParsedResponse([""], ["None"], [2], 5, reasoning=["Think"], tool_calls=[[]]),
        ParsedResponse(["Sure."], ["None"], [1], 5, reasoning=[""], tool_calls=[[]]),
        ParsedResponse([""], ["None"], [1], 5, reasoning=[""], tool_calls=[[piece(0, "", "call-1", "get_weather")]]),
        ParsedResponse([""], ["tool_calls"], [3], 5, reasoning=[""], tool_calls=[[piece(0, '{"city": "Paris"}')]]),
    ]
    _, app = serve(tmp_path, lambda m, v: steps)
    with TestClient(app) as client:
        r = client.post(V1, json={"model": "gen", "input": "Weather?", "tools": [WEATHER], "stream": True})
    events = sse(r.text)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][2] | {"id": None} == {
        "id": None, "type": "function_call", "call_id": "call-1", "name": "get_weather",
        "arguments": '{"city": "Paris"}', "status": "completed",
    }  # fmt: skip
    assert final["usage"]["output_tokens"] == 7 and final["usage"]["output_tokens_details"]["reasoning_tokens"] == 2


def test_previous_response_id_continues_the_stored_conversation(tmp_path):
    fake, app = serve(tmp_path, lambda m, v: text_steps("Paris."))
    with TestClient(app) as client:
        first = client.post(V1, json={"model": "gen", "input": "Capital of France?"}).json()
        second = client.post(V1, json={"model": "gen", "input": "Sure?", "previous_response_id": first["id"]})
        assert second.status_code == 200, second.text
        assert client.get(f"{V1}/{first['id']}").json() == first
        items = client.get(f"{V1}/{second.json()['id']}/input_items").json()
        assert [i["content"][0]["text"] for i in items["data"]] == ["Sure?"] and items["has_more"] is False
        assert client.delete(f"{V1}/{first['id']}").json() == {"id": first["id"], "object": "response", "deleted": True}
        gone = client.get(f"{V1}/{first['id']}")
        assert gone.status_code == 404 and gone.json()["error"]["param"] == "response_id"
        unknown = client.post(V1, json={"model": "gen", "input": "x", "previous_response_id": first["id"]})
        assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "previous_response_id"
    assert fake.requests[1]["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Sure?"},
    ]


def test_function_call_items_become_the_assistants_call_and_the_tools_answer(tmp_path):
    fake, app = serve(tmp_path, lambda m, v: text_steps("Sunny."))
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}", "id": "fc_1"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ]
    with TestClient(app) as client:
        r = client.post(V1, json={"model": "gen", "input": items, "tools": [WEATHER], "store": False})
        assert r.status_code == 200, r.text
        assert client.get(f"{V1}/{r.json()['id']}").status_code == 404  # store: false
    assert fake.requests[0]["messages"] == [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": 3}, "input"),
        ({"input": [{"type": "nope"}]}, "input.0"),
        ({"input": "x", "tools": []}, "tools"),
        ({"input": "x", "tool_choice": "required"}, "tool_choice"),
        ({"input": "x", "background": True, "store": False}, "background"),
        ({"input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "bogus": 1}, "bogus"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "input.0.content.0"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(tmp_path, body, param):
    fake, app = serve(tmp_path, lambda m, v: text_steps("x"))
    with TestClient(app) as client:
        r = client.post(V1, json={"model": "gen", **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"
    assert fake.requests == []


def test_the_models_refusal_names_the_responses_field(tmp_path):
    _, app = serve(tmp_path, lambda m, v: [model_error("sampling_parameters.max_tokens", "too many")])
    with TestClient(app) as client:
        r = client.post(V1, json={"model": "gen", "input": "x", "max_output_tokens": 5, "stream": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_output_tokens"


def test_length_is_incomplete_and_text_format_is_chats_response_format(tmp_path):
    fake, app = serve(tmp_path, lambda m, v: text_steps("{", reason="length"))
    fmt = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    with TestClient(app) as client:
        r = client.post(V1, json={"model": "gen", "input": "x", "text": {"format": fmt}})
    assert r.json()["status"] == "incomplete" and r.json()["incomplete_details"] == {"reason": "max_output_tokens"}
    assert fake.requests[0]["sampling_parameters"]["structured_outputs"] == {"json": {"type": "object"}}


def test_the_size_cap_is_a_413_before_the_model_works(tmp_path):
    fake, app = serve(tmp_path, lambda m, v: text_steps("x"), responses_max_bytes=100)
    with TestClient(app) as client:
        r = client.post(V1, json={"model": "gen", "input": "y" * 200})
        assert r.status_code == 413 and r.json()["error"]["param"] == "input"
        assert client.post(V1, json={"model": "gen", "input": "y" * 200, "store": False}).status_code == 200
    assert len(fake.requests) == 1


def test_a_background_response_is_queued_polled_and_cancelled(tmp_path):
    def slow(model, values):
        time.sleep(0.05)  # the fake runs in the event loop: a few steps of it
        return text_steps("a", "b")

    _, app = serve(tmp_path, slow)
    with TestClient(app) as client:
        queued = client.post(V1, json={"model": "gen", "input": "x", "background": True}).json()
        assert queued["status"] == "queued" and queued["background"] is True
        for _ in range(100):
            done = client.get(f"{V1}/{queued['id']}").json()
            if done["status"] == "completed":
                break
            time.sleep(0.02)
        assert done["output"][0]["content"][0]["text"] == "ab"
        r = client.post(f"{V1}/{queued['id']}/cancel")
        assert r.status_code == 400 and "completed" in r.json()["error"]["message"]
        sync = client.post(V1, json={"model": "gen", "input": "x"}).json()
        assert client.post(f"{V1}/{sync['id']}/cancel").status_code == 400


@pytest.mark.slow  # a real PostgreSQL (the session's, tests/postgres.py)
def test_two_apps_on_one_postgresql_continue_each_others_turns_and_after_a_restart(postgres):
    fake = FakeTriton(models_=[tool_model("gen")], script=lambda m, v: text_steps(f"answer {len(v['messages'])}"))

    def app():
        return TestClient(create_app(Settings(responses_store=postgres), client=fake))

    with app() as a, app() as b:
        first = a.post(V1, json={"model": "gen", "input": "one"}).json()
        second = b.post(V1, json={"model": "gen", "input": "two", "previous_response_id": first["id"]}).json()
        assert b.get(f"{V1}/{first['id']}").json() == first
    with app() as a:  # both gone; a new process on the same database
        third = a.post(V1, json={"model": "gen", "input": "three", "previous_response_id": second["id"]})
        assert third.status_code == 200, third.text
    assert [m["content"] for m in fake.requests[-1]["messages"]] == ["one", "answer 1", "two", "answer 3", "three"]


def test_input_image_is_chats_image_part(tmp_path):
    fake, app = serve(tmp_path, lambda m, v: text_steps("A dot."))
    fake.models_ = [replace(fake.models_[0], inputs=fake.models_[0].inputs | {"image"})]  # a vision model
    pixel = (
        "data:image/png;base64,"
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    content = [{"type": "input_text", "text": "What is it?"}, {"type": "input_image", "image_url": pixel}]
    with TestClient(app) as client:
        r = client.post(V1, json={"model": "gen", "input": [{"role": "user", "content": content}], "store": False})
    assert r.status_code == 200, r.text
    assert fake.requests[0]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is it?"}, {"type": "image"}]}
    ]
    assert len(fake.requests[0]["image"]) == 1


def test_a_refused_message_is_named_by_its_input_index(tmp_path):
    _, app = serve(tmp_path, lambda m, v: text_steps("x"))  # a model without images
    content = [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]
    with TestClient(app) as client:
        items = [{"role": "user", "content": "a"}, {"role": "user", "content": content}]
        r = client.post(V1, json={"model": "gen", "instructions": "Look.", "store": False, "input": items})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input.1.content.0.image_url", r.text
