"""`tokenize_only` requests in the model, without Triton: the wire rules (protocol) and the chat
layer's answer with the SmolLM2 tokenizer and the demo's chat template, against transformers'
own tokenizer. End to end through Triton and the frontend: tests/integration/test_tokenize.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.servers import ROOT
from tests.unit.fakes.engine import IdleEngine
from tests.unit.fakes.wire import inputs
from triton_llm.errors import InvalidInput
from triton_llm.generation.chat import ChatEngine
from triton_llm.generation.protocol import build_outputs, parse_request
from triton_llm.generation.types import GenerateRequest
from triton_llm.settings import GenerationSettings

MODEL = str(ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct")
TEMPLATE = ROOT / "model_repository" / "smollm2" / "1" / "chat_template.jinja"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


class NoEngine(IdleEngine):
    """An engine that must never be reached: tokenize_only is answered by the chat layer."""

    max_model_len = 8192

    async def generate(self, request: GenerateRequest, request_id: str):
        raise AssertionError("the engine got a tokenize_only request")
        yield  # pragma: no cover


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL)


@pytest.fixture(scope="module")
def chat_engine() -> ChatEngine:
    engine = ChatEngine(NoEngine(), GenerationSettings(model=MODEL, chat_template=str(TEMPLATE)))
    asyncio.run(engine.start())
    return engine


def answer(chat_engine: ChatEngine, **values) -> dict[str, np.ndarray]:
    request = parse_request(inputs(tokenize_only=True, **values))
    assert chat_engine.num_choices(request) == 0  # the runner counts no tokens for it

    async def run():
        return [chunk async for chunk in chat_engine.generate(request, "r")]

    (chunk,) = asyncio.run(run())
    assert chunk.finished and chunk.choices == []
    return build_outputs(request, chunk, 0, first=True)


def ids(outputs) -> list[int]:
    return outputs["prompt_token_ids"].tolist()


# -- the wire ---------------------------------------------------------------------------


def test_tokenize_options_apply_to_tokenize_only_requests():
    for name in ("add_special_tokens", "return_token_strs"):
        with pytest.raises(InvalidInput) as exc:
            parse_request(inputs(text_input="Hi", **{name: True}))
        assert exc.value.field == name
    with pytest.raises(InvalidInput) as exc:
        parse_request(inputs(input_ids=[1, 2], tokenize_only=True, return_token_strs=True))
    assert exc.value.field == "return_token_strs"
    request = parse_request(inputs(text_input="Hi", tokenize_only=True, add_special_tokens=False))
    assert request.tokenize_only and request.add_special_tokens is False and not request.return_token_strs


def test_the_prompt_rules_stand():
    for values, field in (
        ({"text_input": ""}, "text_input"),
        ({"messages": "[]"}, "messages"),
        ({"input_ids": [3, -1]}, "input_ids"),
        ({}, "text_input"),
    ):
        with pytest.raises(InvalidInput) as exc:
            parse_request(inputs(tokenize_only=True, **values))
        assert exc.value.field == field, values


# -- the chat layer's answer ------------------------------------------------------------


def test_a_text_gets_the_tokenizers_ids_with_special_tokens_by_default(chat_engine, tokenizer):
    text = "The capital of France is"
    out = answer(chat_engine, text_input=text)
    assert ids(out) == tokenizer(text).input_ids
    assert out["num_input_tokens"].tolist() == [len(ids(out))] and out["max_model_len"].tolist() == [8192]
    assert "token_strs" not in out and "text_output" not in out


def test_add_special_tokens_is_the_clients(chat_engine, tokenizer):
    # SmolLM2 adds none to a text; a rendered chat has them already (vLLM's defaults).
    text = "<|im_start|>user\nHi<|im_end|>"
    for add in (True, False):
        assert (
            ids(answer(chat_engine, text_input=text, add_special_tokens=add))
            == tokenizer(text, add_special_tokens=add).input_ids
        )


@pytest.mark.parametrize("generation_prompt", [True, False])
def test_messages_are_rendered_with_the_models_template(chat_engine, tokenizer, generation_prompt):
    kwargs = {} if generation_prompt else {"chat_template_kwargs": {"add_generation_prompt": False}}
    out = answer(chat_engine, messages=CHAT, **kwargs)
    template = TEMPLATE.read_text()
    expected = tokenizer.apply_chat_template(
        CHAT, chat_template=template, add_generation_prompt=generation_prompt, tokenize=False
    )
    assert ids(out) == tokenizer(expected, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids(out)).endswith("<|im_start|>assistant\n") == generation_prompt


def test_tools_are_rendered_into_the_prompt(chat_engine, tokenizer):
    plain = ids(answer(chat_engine, messages=CHAT))
    with_tools = ids(answer(chat_engine, messages=CHAT, tools=[WEATHER]))
    expected = tokenizer.apply_chat_template(
        CHAT, tools=[WEATHER], chat_template=TEMPLATE.read_text(), add_generation_prompt=True, tokenize=False
    )
    assert with_tools == tokenizer(expected, add_special_tokens=False).input_ids and len(with_tools) > len(plain)
    assert "get_weather" in tokenizer.decode(with_tools)


def test_continue_final_message_and_its_conflict(chat_engine):
    prefill = [*CHAT, {"role": "assistant", "content": "Hello! I"}]
    kwargs = {"add_generation_prompt": False, "continue_final_message": True}
    out = answer(chat_engine, messages=prefill, chat_template_kwargs=kwargs)
    assert out["prompt_token_ids"].size
    with pytest.raises(InvalidInput) as exc:
        answer(chat_engine, messages=prefill, chat_template_kwargs={"continue_final_message": True})
    assert exc.value.field == "chat_template_kwargs"


def test_token_strings_when_asked(chat_engine, tokenizer):
    out = answer(chat_engine, text_input="Hello world", return_token_strs=True)
    strs = out["token_strs"].tolist()
    assert [s.decode() for s in strs] == tokenizer.convert_ids_to_tokens(ids(out)) == ["Hello", "Ġworld"]


def test_input_ids_are_decoded(chat_engine, tokenizer):
    text = "Once upon a time, in a land far away,"
    out = answer(chat_engine, input_ids=tokenizer(text).input_ids)
    assert out["text_output"].tolist() == [text.encode()] and set(out) == {"text_output"}
    chat_ids = ids(answer(chat_engine, messages=CHAT))
    # Special tokens are kept, as vLLM's /detokenize keeps them.
    assert answer(chat_engine, input_ids=chat_ids)["text_output"][0].decode().startswith("<|im_start|>system")


@pytest.mark.parametrize("bad", [49152, 10**6, 2**62])
def test_an_id_beyond_the_vocabulary_is_refused_in_vllms_words(chat_engine, bad):
    with pytest.raises(InvalidInput) as exc:
        answer(chat_engine, input_ids=[1, bad])
    assert exc.value.field == "input_ids" and exc.value.problem == f"Token id {bad} is out of vocabulary"
    assert answer(chat_engine, input_ids=[49151])["text_output"].size == 1  # the last id is in


def test_a_model_without_a_template_refuses_messages():
    engine = ChatEngine(NoEngine(), GenerationSettings(model=MODEL))
    asyncio.run(engine.start())
    engine._tokenizer.chat_template = None  # its own tokenizer, loaded by start()
    with pytest.raises(InvalidInput) as exc:
        answer(engine, messages=CHAT)
    assert exc.value.field == "messages"


def test_model_json_template_defaults_apply_under_the_requests_own():
    settings = GenerationSettings(
        model=MODEL, chat_template=str(TEMPLATE), default_chat_template_kwargs={"add_generation_prompt": False}
    )
    engine = ChatEngine(NoEngine(), settings)
    asyncio.run(engine.start())
    assert not engine._tokenizer.decode(ids(answer(engine, messages=CHAT))).endswith("assistant\n")
    asked = answer(engine, messages=CHAT, chat_template_kwargs={"add_generation_prompt": True})
    assert engine._tokenizer.decode(ids(asked)).endswith("<|im_start|>assistant\n")
