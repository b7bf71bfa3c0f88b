"""Anthropic's Messages API on the real stack, with the official `anthropic` SDK, on both engines:
a message streamed and not (the same greedy text, usage and stop reason), a stop sequence,
count_tokens equal to the message's input tokens, a tool round trip (tool_use -> tool_result
-> answer), a refusal in Anthropic's shape naming the field, and a client that leaves
cancelling the engine's work.

The demo's SmolLM2 has no tool-calling training: the call is forced by naming the tool
(`tool_choice` type "tool"), which the chat layer turns into the arguments' JSON schema.
"""

from __future__ import annotations

import time

import anthropic
import jsonschema
import pytest

from tests.integration.test_cancellation import assert_engine_stopped, engine_requests, post_and_hold, wait_for

MODELS = ["smollm2", "smollm2-hf"]
ASK = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# The SDK (2.x) has no sampling arguments any more; the server takes them, as vLLM's does.
GREEDY = {"extra_body": {"temperature": 0}, "max_tokens": 16}
CALL = {**GREEDY, "max_tokens": 60}  # the forced call's JSON, whitespace included


@pytest.fixture(scope="module")
def client(frontend) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{frontend.url}/openai", api_key="unused", max_retries=0)


def streamed(client: anthropic.Anthropic, **fields) -> tuple[anthropic.types.Message, list[str]]:
    with client.messages.stream(**fields) as stream:
        kinds = [event.type for event in stream]
        return stream.get_final_message(), kinds


@pytest.mark.parametrize("model", MODELS)
def test_a_message_streamed_and_not_with_its_stop_sequence_and_token_count(client, model):
    fields = {"model": model, "messages": ASK, "system": "You are brief.", **GREEDY}
    out = client.messages.create(**fields)
    (block,) = out.content
    assert block.type == "text" and block.text and out.stop_reason in ("end_turn", "max_tokens")
    assert out.id.startswith("msg_") and out.model == model and out.role == "assistant"
    assert out.usage.output_tokens > 0

    final, kinds = streamed(client, **fields)
    assert [b.text for b in final.content] == [block.text]
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == (
        out.stop_reason, out.usage.input_tokens, out.usage.output_tokens
    )  # fmt: skip
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-3:] == [
        "content_block_stop", "message_delta", "message_stop"
    ]  # fmt: skip

    counted = client.messages.count_tokens(model=model, messages=ASK, system="You are brief.")
    assert counted.input_tokens == out.usage.input_tokens

    # A word of the greedy answer as a stop sequence: the answer ends before it, and names it.
    word = block.text.split()[2]
    stop_fields = {**fields, "stop_sequences": [word, "never-seen"]}
    cut = client.messages.create(**stop_fields)
    assert (cut.stop_reason, cut.stop_sequence) == ("stop_sequence", word)
    assert cut.content[0].text == block.text[: block.text.index(word)]
    cut_streamed, _ = streamed(client, **stop_fields)
    assert (cut_streamed.stop_sequence, cut_streamed.content[0].text) == (word, cut.content[0].text)


@pytest.mark.parametrize("model", MODELS)
def test_a_tool_round_trip(client, model):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    fields = {"model": model, "tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}}
    first = client.messages.create(messages=ask, **fields, **CALL)
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.id and first.stop_reason == "tool_use"
    jsonschema.validate(call.input, WEATHER["input_schema"])

    again, _ = streamed(client, messages=ask, **fields, **CALL)  # the same call, streamed
    assert [(b.type, b.name, b.input) for b in again.content] == [("tool_use", "get_weather", call.input)]
    assert again.stop_reason == "tool_use"

    history = [
        *ask,
        {"role": "assistant", "content": first.content},  # the SDK's blocks, as clients pass them back
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 24 C."}]},
    ]
    final = client.messages.create(model=model, messages=history, tools=[WEATHER], **GREEDY)
    assert final.content[0].type == "text" and final.content[0].text
    assert final.usage.input_tokens > first.usage.input_tokens  # the call and its result are in the prompt
    counted = client.messages.count_tokens(model=model, messages=history, tools=[WEATHER])
    assert counted.input_tokens == final.usage.input_tokens


def test_a_bad_field_is_anthropics_400_naming_it(client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="smollm2", messages=ASK, max_tokens=8, extra_body={"temperature": 3})
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert caught.value.body["error"]["message"].startswith("temperature:")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="no-such-model", messages=ASK, max_tokens=8)


def test_a_client_that_leaves_cancels_the_engine_work(frontend, triton):
    # No ignore_eos in Anthropic's fields: a long count keeps the greedy model going.
    ask = [{"role": "user", "content": "Count from 1 to 1000, one number per line."}]
    sock = post_and_hold(f"{frontend.url}/openai/v1/messages", {"model": "smollm2", "max_tokens": 2000,
                                                                 "temperature": 0, "messages": ask})  # fmt: skip
    try:
        assert wait_for(lambda: engine_requests(triton) == 1), "the request never reached the engine"
        time.sleep(1.0)  # generating, with no byte sent back: the client leaves
    finally:
        sock.close()
    assert wait_for(lambda: engine_requests(triton) == 0, timeout=5), "the engine still holds the request"
    assert_engine_stopped(triton)
