"""The chat layer (triton_llm.generation.chat) on scripted engine output: vLLM's real parsers
and the SmolLM2 tokenizer, no model. The end-to-end checks are in tests/integration/test_tools.py."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.servers import ROOT
from tests.unit.fakes.engine import IdleEngine
from triton_llm.errors import InvalidInput, SettingError
from triton_llm.generation.chat import ChatEngine
from triton_llm.generation.types import ChoiceDelta, GenerateRequest, GenerationChunk
from triton_llm.settings import GenerationSettings

pytest.importorskip("vllm.parser")
MODEL = str(ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


class Scripted(IdleEngine):
    """Yields `text` token by token (streamed) or whole, with the tokenizer's ids, ending with `finish`."""

    def __init__(self, tokenizer, text: str, finish: str = "stop"):
        super().__init__()
        self.tokenizer, self.text, self.finish = tokenizer, text, finish
        self.seen: list[GenerateRequest] = []

    async def generate(self, request: GenerateRequest, request_id: str):
        self.seen.append(request)
        ids = self.tokenizer(self.text, add_special_tokens=False).input_ids
        if not request.stream:
            yield GenerationChunk(
                "", 5, [ChoiceDelta(0, self.text, len(ids), self.finish, token_ids=ids)], True, [1, 2]
            )
            return
        for i, token in enumerate(ids):
            last = i == len(ids) - 1
            delta = ChoiceDelta(0, self.tokenizer.decode([token]), 1, self.finish if last else None, token_ids=[token])
            yield GenerationChunk("", 5, [delta], last, [1, 2])


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL)


def chat(tokenizer, text: str, finish: str = "stop", **settings) -> tuple[ChatEngine, Scripted]:
    engine = Scripted(tokenizer, text, finish)
    chat_engine = ChatEngine(engine, GenerationSettings(model=MODEL, **settings))
    asyncio.run(chat_engine.start())
    return chat_engine, engine


def run(chat_engine: ChatEngine, stream: bool = False, **fields) -> list[GenerationChunk]:
    request = GenerateRequest(messages=[{"role": "user", "content": "Weather in Paris?"}], stream=stream, **fields)

    async def collect():
        return [chunk async for chunk in chat_engine.generate(request, "r")]

    return asyncio.run(collect())


HERMES = {"tool_call_parser": "hermes", "enable_auto_tool_choice": True}
REASONING = {"reasoning_parser": "qwen3", "default_chat_template_kwargs": {"enable_thinking": False}}  # the test repo's
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def test_auto_finds_the_call_and_reports_tool_calls(tokenizer):
    chat_engine, _ = chat(tokenizer, "Let me check. " + CALL, **HERMES)
    (chunk,) = run(chat_engine, tools=[WEATHER], tool_choice="auto")
    choice = chunk.choices[0]
    assert choice.text == "Let me check. "
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.tool_calls
    assert call["id"].startswith("chatcmpl-tool-") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_streamed_deltas_assemble_to_the_same_call(tokenizer):
    chat_engine, _ = chat(tokenizer, "Let me check. " + CALL, **HERMES)
    chunks = run(chat_engine, stream=True, tools=[WEATHER])
    deltas = [d for c in chunks for d in c.choices]
    calls = [tc for d in deltas for tc in d.tool_calls]
    assert calls[0]["id"].startswith("chatcmpl-tool-") and calls[0]["function"]["name"] == "get_weather"
    arguments = "".join(tc.get("function", {}).get("arguments", "") for tc in calls)
    assert json.loads(arguments) == {"city": "Paris"}
    assert "".join(d.text for d in deltas) == "Let me check. "
    assert deltas[-1].finish_reason == "tool_calls"


def test_required_and_named_become_json_schemas(tokenizer):
    chat_engine, engine = chat(tokenizer, '[{"name": "get_weather", "parameters": {"city": "Oslo"}}]')
    (chunk,) = run(chat_engine, tools=[WEATHER], tool_choice="required", sampling={})
    schema = engine.seen[-1].sampling["structured_outputs"]["json"]
    assert schema["type"] == "array" and schema["minItems"] == 1
    (call,) = chunk.choices[0].tool_calls
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    assert chunk.choices[0].finish_reason == "tool_calls" and chunk.choices[0].text == ""

    chat_engine, engine = chat(tokenizer, '{"city": "Rome"}')
    named = {"type": "function", "function": {"name": "get_weather"}}
    (chunk,) = run(chat_engine, tools=[WEATHER], tool_choice=named, sampling={})
    assert engine.seen[-1].sampling["structured_outputs"]["json"] == WEATHER["function"]["parameters"]
    (call,) = chunk.choices[0].tool_calls
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Rome"}'}
    assert chunk.choices[0].finish_reason == "stop"  # OpenAI's reason for a named tool


def test_auto_without_a_parser_is_refused_naming_tool_choice(tokenizer):
    chat_engine, _ = chat(tokenizer, "hi")
    with pytest.raises(InvalidInput) as err:
        run(chat_engine, tools=[WEATHER], tool_choice="auto")
    assert err.value.field == "tool_choice"


def test_none_renders_no_calls_and_plain_chat_is_untouched(tokenizer):
    chat_engine, engine = chat(tokenizer, CALL, **HERMES)
    (chunk,) = run(chat_engine, tools=[WEATHER], tool_choice="none")
    assert chunk.choices[0].tool_calls is None and chunk.choices[0].text == CALL
    assert not engine.seen[-1].returns_tool_calls


def test_reasoning_is_split_from_the_answer(tokenizer):
    text = "<think>The user greets.</think>Hello!"
    settings = {"reasoning_parser": "qwen3", "default_chat_template_kwargs": {"enable_thinking": False}}
    chat_engine, engine = chat(tokenizer, text, **settings)
    (chunk,) = run(chat_engine, chat_template_kwargs={"enable_thinking": True})
    assert (chunk.choices[0].reasoning, chunk.choices[0].text) == ("The user greets.", "Hello!")
    streamed = [
        d for c in run(chat_engine, stream=True, chat_template_kwargs={"enable_thinking": True}) for d in c.choices
    ]
    assert "".join(d.reasoning for d in streamed) == "The user greets."
    assert "".join(d.text for d in streamed) == "Hello!"
    # The model.json default applies when the request does not set it: thinking off, all content.
    (chunk,) = run(chat_engine)
    assert engine.seen[-1].chat_template_kwargs == {"enable_thinking": False}
    assert chunk.choices[0].text == text


def test_bad_settings_name_their_key(tokenizer):
    with pytest.raises(SettingError) as err:
        chat(tokenizer, "", tool_call_parser="no-such-parser", enable_auto_tool_choice=True)
    assert err.value.key == "tool_call_parser"
    with pytest.raises(SettingError) as err:
        chat(tokenizer, "", enable_auto_tool_choice=True)
    assert err.value.key == "enable_auto_tool_choice"
    with pytest.raises(SettingError) as err:
        chat(tokenizer, "", reasoning_parser="deepseek_r1")  # SmolLM2 has no <think> token
    assert err.value.key == "reasoning_parser"


def test_with_a_parser_forced_calls_take_its_format_with_the_schema_pinned(tokenizer):
    # vLLM's structural tag for hermes; tool_strict_level "parameter" (our default) pins the arguments' schema.
    chat_engine, engine = chat(tokenizer, CALL, **HERMES)
    named = {"type": "function", "function": {"name": "get_weather"}}
    (chunk,) = run(chat_engine, tools=[WEATHER], tool_choice=named, sampling={})
    tag = json.loads(engine.seen[-1].sampling["structured_outputs"]["structural_tag"])
    assert tag["format"]["tags"][0]["content"]["json_schema"] == WEATHER["function"]["parameters"]
    (call,) = chunk.choices[0].tool_calls
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert chunk.choices[0].finish_reason == "stop" and chunk.choices[0].text == ""


def whole_and_streamed(chat_engine: ChatEngine, **fields) -> tuple[tuple, tuple]:
    """(content, calls as (name, arguments), finish reason) of the answer not streamed, then streamed."""
    (choice,) = run(chat_engine, **fields)[0].choices
    whole = (choice.text, [(c["function"]["name"], c["function"]["arguments"]) for c in choice.tool_calls])
    deltas = [d for c in run(chat_engine, stream=True, **fields) for d in c.choices]
    calls: dict[int, list[str]] = {}
    for tc in (tc for d in deltas for tc in d.tool_calls):
        call = calls.setdefault(tc["index"], ["", ""])
        call[0] += tc.get("function", {}).get("name", "")
        call[1] += tc.get("function", {}).get("arguments", "")
    streamed = ("".join(d.text for d in deltas), [tuple(calls[i]) for i in sorted(calls)])
    return (*whole, choice.finish_reason), (*streamed, deltas[-1].finish_reason)


@pytest.mark.parametrize(
    ("cut", "settings", "tool_choice", "call"),
    [
        # Inside the closing tag (the case): vLLM's whole parse returned the markup as content.
        (CALL[:-5], HERMES, "required", ("get_weather", '{"city": "Paris"}')),
        (CALL[:-5], HERMES, NAMED, ("get_weather", '{"city": "Paris"}')),
        (CALL[:-5], {**HERMES, **REASONING}, "required", ("get_weather", '{"city": "Paris"}')),
        # Inside the arguments: the call as far as it got, as the stream gives it.
        (CALL[: CALL.index("ris")], HERMES, "required", ("get_weather", '{"city": "Pa')),
        ('[{"name": "get_weather", "parameters": {"city": "Os', {}, "required", ("get_weather", '{"city": "Os')),
        ('{"city": "Ro', {}, NAMED, ("get_weather", '{"city": "Ro')),
    ],
)
def test_a_forced_call_cut_by_max_tokens_is_the_same_streamed_or_not(
    tokenizer, caplog, cut, settings, tool_choice, call
):
    chat_engine, _ = chat(tokenizer, cut, finish="length", **settings)
    with caplog.at_level(logging.DEBUG):
        whole, streamed = whole_and_streamed(chat_engine, tools=[WEATHER], tool_choice=tool_choice)
    assert whole == streamed == ("", [call], "length")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
