"""Tool calling and reasoning through the whole stack, on both engines: the official SDK,
LangChain and instructor against the frontend, the parsers on real model output.

The demo's SmolLM2 has no tool-calling training, so the tests that check vLLM's parsers make
the engine write the parser's format with a regular expression (`structured_outputs`, vLLM's
field): the text the parser reads is still the model's own output, token by token.
"""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

MODELS = ["smollm2", "smollm2-hf"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}
SCHEMA = WEATHER["function"]["parameters"]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}
GREEDY = {"temperature": 0, "max_tokens": 60}
# Hermes' format, as the demo's chat template asks for it; the `hermes` parser reads it.
HERMES_CALL = r'Sure\. <tool_call>\n\{"name": "get_weather", "arguments": \{"city": "Paris"\}\}\n</tool_call>'


@pytest.fixture(scope="module")
def client(frontend) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{frontend.url}/openai/v1", api_key="unused", max_retries=0)


def assemble(chunks) -> tuple[str, list[dict], str | None, str]:
    """Content, tool calls (arguments concatenated per index), finish reason and reasoning of a stream."""
    content, reasoning, calls, finish = "", "", {}, None
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            reasoning += getattr(delta, "reasoning_content", None) or ""
            for tc in delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = call["id"] or tc.id
                call["name"] += (tc.function.name or "") if tc.function else ""
                call["arguments"] += (tc.function.arguments or "") if tc.function else ""
            finish = choice.finish_reason or finish
    return content, [calls[i] for i in sorted(calls)], finish, reasoning


@pytest.mark.parametrize("model", MODELS)
def test_named_tool_choice_gives_a_valid_call_streamed_alike(client, model):
    out = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice=NAMED, **GREEDY)
    choice = out.choices[0]
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    jsonschema.validate(json.loads(call.function.arguments), SCHEMA)
    assert choice.finish_reason == "stop"  # OpenAI's reason when the call was forced by name
    assert not choice.message.content

    stream = client.chat.completions.create(
        model=model, messages=ASK, tools=[WEATHER], tool_choice=NAMED, stream=True, **GREEDY
    )
    content, calls, finish, _ = assemble(stream)
    # The same JSON (the hermes parser re-serializes whole calls; streamed, it passes the text on).
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("get_weather", json.loads(call.function.arguments))
    ]
    assert calls[0]["id"] and finish == "stop" and not content


@pytest.mark.parametrize("model", MODELS)
def test_required_gives_calls_with_finish_reason_tool_calls(client, model):
    out = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice="required", **GREEDY)
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    for call in choice.message.tool_calls:
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), SCHEMA)
    stream = client.chat.completions.create(
        model=model, messages=ASK, tools=[WEATHER], tool_choice="required", stream=True, **GREEDY
    )
    _, calls, finish, _ = assemble(stream)
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        (c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls
    ]
    assert finish == "tool_calls"


def cuts(texts: list[str]) -> list[int]:
    """max_tokens that cut a hermes call (`texts[k]`: its first k tokens) inside the closing tag, then inside
    the arguments."""
    in_tag = next(k for k, t in enumerate(texts) if "</" in t and "</tool_call>" not in t)
    in_arguments = next(k for k, t in enumerate(texts) if '"arguments": {' in t) + 2
    return [in_tag, in_arguments]


@pytest.mark.parametrize("model", MODELS)
def test_a_forced_call_cut_by_max_tokens_is_the_same_streamed_or_not(client, triton, tokenizer, model):
    # vLLM's server gives a call cut inside `</tool_call>` as markup in `content` when not streamed (and logs a
    # traceback) and as `tool_calls` streamed; here both give the call as far as it got, finish_reason "length".
    fields = {"messages": ASK, "tools": [WEATHER], "tool_choice": "required", "temperature": 0}
    full = client.chat.completions.create(model=model, max_tokens=60, extra_body={"return_token_ids": True}, **fields)
    full_call, ids = full.choices[0].message.tool_calls[0], full.choices[0].token_ids
    logged = triton.log.stat().st_size
    answers = []
    for max_tokens in cuts([tokenizer.decode(ids[:k]) for k in range(len(ids) + 1)]):
        choice = client.chat.completions.create(model=model, max_tokens=max_tokens, **fields).choices[0]
        calls = [(c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
        answers.append((choice.message.content or None, calls, choice.finish_reason))
        content, streamed, finish, _ = assemble(
            client.chat.completions.create(model=model, max_tokens=max_tokens, stream=True, **fields)
        )
        assert answers[-1] == (content or None, [(c["name"], c["arguments"]) for c in streamed], finish), max_tokens
    (in_tag, in_arguments) = answers
    assert in_tag[0] is None and in_tag[2] == in_arguments[2] == "length"
    # Cut inside its closing tag, the call is whole; inside its arguments, it is what was written.
    assert [(name, json.loads(arguments)) for name, arguments in in_tag[1]] == [
        ("get_weather", json.loads(full_call.function.arguments))
    ]
    assert in_arguments[1][0][0] == "get_weather" and in_arguments[1][0][1].startswith("{")
    log = triton.log.read_text(errors="replace")[logged:]
    assert "Traceback" not in log and "Error in extracting tool call" not in log, log[-3000:]


@pytest.mark.parametrize("model", MODELS)
def test_hermes_parser_reads_the_models_output(client, model):
    # `auto` with a constraint of the client's: the model writes either the constraint's text (here a hermes
    # call after "Sure. ") or a hermes call of its own (vLLM's structural tag, tool_strict_level "parameter");
    # the hermes parser reads the call out of that text either way.
    forced = {"structured_outputs": {"regex": HERMES_CALL}}
    out = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], extra_body=forced, **GREEDY)
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content in ("Sure. ", None)
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id
    jsonschema.validate(json.loads(call.function.arguments), SCHEMA)
    stream = client.chat.completions.create(
        model=model, messages=ASK, tools=[WEATHER], extra_body=forced, stream=True, **GREEDY
    )
    content, calls, finish, _ = assemble(stream)
    assert (content or None, finish) == (choice.message.content, "tool_calls")
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("get_weather", json.loads(call.function.arguments))
    ]


@pytest.mark.parametrize("model", MODELS)
def test_round_trip_call_result_answer(client, model):
    first = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice=NAMED, **GREEDY)
    call = first.choices[0].message.tool_calls[0]
    messages = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 18, "sky": "sunny"})},
    ]
    answer = client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER], tool_choice="none", **GREEDY
    )
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls
    assert answer.usage.prompt_tokens > first.usage.prompt_tokens  # the call and its result were rendered


@pytest.mark.parametrize("model", MODELS)
def test_none_and_auto(client, model):
    out = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice="none", **GREEDY)
    assert out.choices[0].message.content and not out.choices[0].message.tool_calls
    assert out.choices[0].finish_reason in ("stop", "length")
    out = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice="auto", **GREEDY)
    choice = out.choices[0]
    if choice.message.tool_calls:
        assert choice.finish_reason == "tool_calls"
        for call in choice.message.tool_calls:
            jsonschema.validate(json.loads(call.function.arguments), SCHEMA)
    else:
        assert choice.message.content and choice.finish_reason in ("stop", "length")


@pytest.mark.parametrize("model", MODELS)
def test_reasoning_is_split_from_the_answer(client, model):
    body = {
        "chat_template_kwargs": {"enable_thinking": True},  # the test models default it to false
        "structured_outputs": {"regex": r"<think>The user greets me\.</think>Hello there!"},
    }
    out = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], extra_body=body, **GREEDY
    )
    message = out.choices[0].message
    assert (message.reasoning_content, message.content) == ("The user greets me.", "Hello there!")
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], extra_body=body, stream=True, **GREEDY
    )
    content, _, finish, reasoning = assemble(stream)
    assert (reasoning, content, finish) == ("The user greets me.", "Hello there!", "stop")
    # Thinking off (the model.json default): the markers are plain content.
    body.pop("chat_template_kwargs")
    out = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], extra_body=body, **GREEDY
    )
    assert out.choices[0].message.content == "<think>The user greets me.</think>Hello there!"


@pytest.mark.parametrize(
    ("model", "fields", "param"),
    [
        ("t5-tiny", {"tools": [WEATHER]}, "tool_choice"),  # auto needs a tool_call_parser in model.json
        ("smollm2", {"tool_choice": "required"}, "tool_choice"),  # no tools
        (
            "smollm2",
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ("minilm", {"tools": [WEATHER]}, "model"),  # an embedding model does not chat
    ],
)
def test_unsupported_combinations_are_400_naming_the_field(client, model, fields, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=model, messages=ASK, max_tokens=5, **fields)
    assert err.value.body["param"] == param, err.value.body


@pytest.mark.parametrize("model", MODELS)
def test_langchain_bind_tools_and_structured_output(frontend, model):
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class Weather(BaseModel):
        """The weather to look up."""

        city: str

    llm = ChatOpenAI(model=model, base_url=f"{frontend.url}/openai/v1", api_key="unused", temperature=0, max_tokens=40)
    message = llm.bind_tools([WEATHER], tool_choice="get_weather").invoke("What is the weather in Paris?")
    (call,) = message.tool_calls
    assert call["name"] == "get_weather" and call["id"]
    jsonschema.validate(call["args"], SCHEMA)
    result = llm.with_structured_output(Weather, method="function_calling").invoke("Weather in Rome?")
    assert isinstance(result, Weather) and result.city


@pytest.mark.parametrize("model", MODELS)
def test_instructor_tools_mode(client, model):
    import instructor
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        country: str

    patched = instructor.from_openai(client, mode=instructor.Mode.TOOLS)
    city = patched.chat.completions.create(
        model=model, response_model=City, messages=[{"role": "user", "content": "Paris is in France."}],
        max_retries=0, **GREEDY,
    )  # fmt: skip
    assert isinstance(city, City) and city.name and city.country
