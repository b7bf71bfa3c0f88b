"""The Responses API through the whole stack, on both engines, with real clients: the official
`openai` SDK (create, stream, retrieve, delete, a function-tool round trip chained by
previous_response_id) and the OpenAI Agents SDK on its default Responses path; a client that
leaves cancels the engine's work; and the state in a real database: a three-turn conversation
alternating between two frontends on one PostgreSQL, surviving a restart of both (and on
SQLite for one process).

SmolLM2 has no tool-calling training: a call is forced as test_tools forces it (vLLM's
`structured_outputs` regex, or tool_choice "required"), and the parsers read the model's output.
"""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest

from tests.integration.test_cancellation import post_and_hold, wait_for
from tests.servers import FrontendProcess, engine_requests

MODELS = ["smollm2", "smollm2-hf"]
GREEDY = {"temperature": 0, "max_output_tokens": 16}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HERMES_CALL = r'<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "Paris"\}\}\n</tool_call>'


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/openai/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def client(frontend) -> openai.OpenAI:
    return sdk(frontend.url)


@pytest.mark.parametrize("model", MODELS)
def test_create_equals_chat_and_streams_the_same_text_with_exact_usage(client, model):
    ask = "Name a color."
    out = client.responses.create(model=model, input=ask, instructions="Answer in one word.", **GREEDY)
    chat = client.chat.completions.create(
        model=model, max_tokens=16, temperature=0,
        messages=[{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": ask}],
    )  # fmt: skip
    assert out.status == "completed" and out.output_text == chat.choices[0].message.content
    assert (out.usage.input_tokens, out.usage.output_tokens) == (chat.usage.prompt_tokens, chat.usage.completion_tokens)
    assert out.usage.total_tokens == chat.usage.total_tokens and out.usage.output_tokens_details.reasoning_tokens == 0
    with client.responses.stream(model=model, input=ask, instructions="Answer in one word.", **GREEDY) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and final.output_text == out.output_text
    assert client.responses.retrieve(final.id).output_text == out.output_text
    assert client.responses.delete(final.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(final.id)


# vLLM only, as the reasoning test: the parsers and the chat path are the engines' shared code, and
# the transformers engine's forced output is slow (24 s here); its tool round trip is the agent's.
@pytest.mark.parametrize("model", ["smollm2"])
def test_a_function_tool_round_trip_chained_by_previous_response_id(client, model):
    first = client.responses.create(
        model=model, input="What is the weather in Paris?", tools=[WEATHER],
        extra_body={"structured_outputs": {"regex": HERMES_CALL}}, temperature=0, max_output_tokens=60,
    )  # fmt: skip
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    second = client.responses.create(
        model=model, previous_response_id=first.id, tools=[WEATHER], **GREEDY,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"}],
    )  # fmt: skip
    assert second.status in ("completed", "incomplete") and second.output_text
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens > first.usage.input_tokens  # the first turn and the call are in its prompt
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["function_call_output"]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model=model, input="Hi", previous_response_id="resp_unknown", **GREEDY)
    assert unknown.value.body["param"] == "previous_response_id"


@pytest.mark.parametrize("model", ["smollm2"])
def test_reasoning_items_structured_output_and_a_bad_field(client, model):
    out = client.responses.create(
        model=model, input="Hi", reasoning={"effort": "low"}, temperature=0, max_output_tokens=40,
        extra_body={"structured_outputs": {"regex": r"<think>The user greets me\.</think>Hello there!"}},
    )  # fmt: skip
    assert [item.type for item in out.output] == ["reasoning", "message"]
    assert out.output[0].content[0].text == "The user greets me." and out.output_text == "Hello there!"
    assert 0 < out.usage.output_tokens_details.reasoning_tokens < out.usage.output_tokens
    schema = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}
    fmt = {"format": {"type": "json_schema", "name": "color", "schema": schema}}
    shaped = client.responses.create(
        model=model, input="A color as JSON.", text=fmt, temperature=0, max_output_tokens=30
    )
    assert shaped.status != "completed" or isinstance(json.loads(shaped.output_text)["color"], str)
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=model, input="Hi", max_output_tokens=0)
    assert bad.value.body["param"] == "max_output_tokens"


@pytest.mark.parametrize("model", MODELS)
def test_an_agents_sdk_agent_with_a_function_tool_runs_to_its_final_output(frontend, model):
    from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # its traces go to OpenAI's servers
    calls = []

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return f"Sunny in {city}, 24 C."

    client = openai.AsyncOpenAI(base_url=f"{frontend.url}/openai/v1", api_key="unused", max_retries=0)
    agent = Agent(
        name="weather", instructions="Answer briefly.", tools=[get_weather],
        model=OpenAIResponsesModel(model=model, openai_client=client),
        # The first turn must call (SmolLM2 would not by itself); the SDK resets it to auto after.
        model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=40),
    )  # fmt: skip
    result = asyncio.run(Runner.run(agent, "What is the weather in Paris?", max_turns=4))
    assert len(calls) == 1 and isinstance(result.final_output, str) and result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"] and kinds[-1] == "message_output_item"


@pytest.mark.parametrize("model", MODELS)
def test_a_client_that_leaves_cancels_the_engine_work(frontend, triton, model):
    body = {"model": model, "input": "Tell me a long story.", "max_output_tokens": 2000, "ignore_eos": True,
            "temperature": 0}  # fmt: skip
    sock = post_and_hold(f"{frontend.url}/openai/v1/responses", body)
    try:
        assert wait_for(lambda: engine_requests(triton.metrics_url, model) == 1), "the request never reached the engine"
        time.sleep(0.5)
    finally:
        sock.close()
    assert wait_for(lambda: engine_requests(triton.metrics_url, model) == 0, timeout=5), (
        "the engine still holds the request"
    )


def three_turns(urls: list[str], restart) -> None:
    """Turns 1 and 2 on urls[0] and urls[-1]; `restart()`; turn 3 on urls[0], equal to chat's
    greedy answer to the whole conversation (so the stored turns were its prompt)."""
    asks = ["My name is Ada.", "What is 2 + 2?", "What is my name?"]
    first = sdk(urls[0]).responses.create(model="smollm2", input=asks[0], **GREEDY)
    second = sdk(urls[-1]).responses.create(model="smollm2", input=asks[1], previous_response_id=first.id, **GREEDY)
    urls = restart()
    assert sdk(urls[-1]).responses.retrieve(first.id).output_text == first.output_text
    third = sdk(urls[0]).responses.create(model="smollm2", input=asks[2], previous_response_id=second.id, **GREEDY)
    messages = [
        {"role": "user", "content": asks[0]}, {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": asks[1]}, {"role": "assistant", "content": second.output_text},
        {"role": "user", "content": asks[2]},
    ]  # fmt: skip
    chat = sdk(urls[-1]).chat.completions.create(model="smollm2", messages=messages, max_tokens=16, temperature=0)
    assert third.output_text == chat.choices[0].message.content
    assert third.usage.input_tokens == chat.usage.prompt_tokens


class Frontends:
    """Frontend processes on one store, started together, restarted together."""

    def __init__(self, triton, store: str, folder, count: int):
        self.triton, self.folder, self.count, self.runs = triton, folder, count, 0
        self.env = {"KSERVE_OPENAI_ROUTE_PREFIX": "openai", "TRITON_LLM_RESPONSES_STORE": store}
        self.procs: list[FrontendProcess] = []

    def start(self) -> list[str]:
        self.runs += 1
        self.procs = [
            FrontendProcess(self.triton.grpc_url, self.folder / f"frontend-{self.runs}-{i}.log", env=self.env)
            for i in range(self.count)
        ]
        for proc in self.procs:
            proc.wait_up()
        return [proc.url for proc in self.procs]

    def restart(self) -> list[str]:
        self.stop()
        return self.start()

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


def test_two_frontends_on_postgresql_share_a_conversation_across_a_restart(triton, postgres, tmp_path):
    frontends = Frontends(triton, postgres, tmp_path, 2)
    try:
        three_turns(frontends.start(), frontends.restart)
    finally:
        frontends.stop()


def test_one_frontend_on_sqlite_keeps_a_conversation_across_a_restart(triton, tmp_path):
    frontends = Frontends(triton, f"sqlite:///{tmp_path / 'responses.sqlite'}", tmp_path, 1)
    try:
        three_turns(frontends.start(), frontends.restart)
    finally:
        frontends.stop()
