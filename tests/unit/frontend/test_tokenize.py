"""/tokenize and /detokenize through the frontend, with the model's side in process: a fake
Triton whose generation model is the real protocol and chat layer (SmolLM2's tokenizer, the
demo's template), so vLLM's shapes, defaults and refusals are checked against transformers'
own tokenizer in milliseconds. Through a real tritonserver: tests/integration/test_tokenize.py."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import ModelInfo
from openai_frontend.errors import from_triton
from tests.unit.fakes.model_server import FakeTriton, embedding_model, generation_model
from tests.unit.generation.test_tokenize import CHAT, MODEL, TEMPLATE, WEATHER, NoEngine
from triton_llm.errors import InvalidInput
from triton_llm.generation.chat import ChatEngine
from triton_llm.generation.protocol import INPUTS, build_outputs, parse_request
from triton_llm.settings import GenerationSettings


class TokenizingTriton(FakeTriton):
    """Answers each request as the model would: tensors in, the chat layer's answer out."""

    engine: ChatEngine | None = None

    async def generate(self, model, values, request_id=""):
        self.requests.append(values)
        arrays = {name: _array(value) for name, value in values.items()}
        try:
            request = parse_request(arrays.get)
            chunks = [chunk async for chunk in self.engine.generate(request, request_id)]
        except InvalidInput as exc:
            raise from_triton(exc.to_wire(), "INVALID_ARG") from None
        yield build_outputs(request, chunks[-1], 0, first=True)


def _array(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, bool):
        return np.array([value])
    return np.array([(value if isinstance(value, str) else json.dumps(value)).encode()], dtype=np.object_)


@pytest.fixture(scope="module")
def engine() -> ChatEngine:
    chat_engine = ChatEngine(NoEngine(), GenerationSettings(model=MODEL, chat_template=str(TEMPLATE)))
    asyncio.run(chat_engine.start())
    return chat_engine


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL)


def vllm_backend_model(name: str) -> ModelInfo:
    """A generation model that does not speak our additions (vllm_backend's tensors only)."""
    names = {"text_input", "stream", "sampling_parameters", "exclude_input_in_output"}
    return ModelInfo(name, ready=True, generate=True, chat=False, embed=False, created=0, inputs=frozenset(names))


@pytest.fixture()
def triton(engine) -> TokenizingTriton:
    fake = TokenizingTriton(models_=[generation_model("gen"), embedding_model("emb"), vllm_backend_model("plain")])
    fake.engine = engine
    return fake


def post(triton, path: str, body: dict):
    return TestClient(create_app(client=triton)).post(f"/openai/{path}", json=body)


def refused(response, param: str, status: int = 400) -> str:
    error = response.json()["error"]
    assert response.status_code == status and error["param"] == param, response.text
    return error["message"]


def test_a_prompt_in_vllms_shape(triton, tokenizer):
    text = "The capital of France is"
    out = post(triton, "tokenize", {"model": "gen", "prompt": text})
    ids = tokenizer(text).input_ids
    assert out.status_code == 200
    assert out.json() == {"count": len(ids), "max_model_len": 8192, "tokens": ids, "token_strs": None}
    (sent,) = triton.requests
    assert sent == {"text_input": text, "tokenize_only": True, "add_special_tokens": True}


def test_token_strings_and_no_special_tokens_when_asked(triton, tokenizer):
    body = {"model": "gen", "prompt": "Hello world", "return_token_strs": True, "add_special_tokens": False}
    out = post(triton, "tokenize", body)
    assert out.json()["token_strs"] == tokenizer.convert_ids_to_tokens(out.json()["tokens"]) == ["Hello", "Ġworld"]
    assert triton.requests[0]["add_special_tokens"] is False


@pytest.mark.parametrize("generation_prompt", [True, False])
def test_messages_with_the_models_template_and_tools(triton, tokenizer, generation_prompt):
    body = {"model": "gen", "messages": CHAT, "tools": [WEATHER], "add_generation_prompt": generation_prompt}
    out = post(triton, "tokenize", body).json()
    rendered = tokenizer.apply_chat_template(
        CHAT, tools=[WEATHER], chat_template=TEMPLATE.read_text(), add_generation_prompt=generation_prompt,
        tokenize=False,
    )  # fmt: skip
    assert out["tokens"] == tokenizer(rendered, add_special_tokens=False).input_ids
    assert triton.requests[0]["add_special_tokens"] is False


def test_detokenize_gives_the_text_back(triton, tokenizer):
    text = "Once upon a time, in a land far away,"
    tokens = post(triton, "tokenize", {"model": "gen", "prompt": text}).json()["tokens"]
    out = post(triton, "detokenize", {"model": "gen", "tokens": tokens})
    assert out.status_code == 200 and out.json() == {"prompt": text}


def test_model_may_be_left_out_when_one_generation_model_is_served(triton):
    triton.models_ = [m for m in triton.models_ if m.name != "plain"]
    assert post(triton, "detokenize", {"tokens": [19556]}).json() == {"prompt": "Hello"}
    triton.models_.append(generation_model("other"))
    assert "2 generation models" in refused(post(triton, "detokenize", {"tokens": [19556]}), "model")


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("tokenize", {"model": "gen", "prompt": ""}, "prompt"),
        ("tokenize", {"model": "gen"}, "prompt"),
        ("tokenize", {"model": "gen", "prompt": "Hi", "messages": CHAT}, "prompt"),
        ("tokenize", {"model": "gen", "messages": []}, "messages"),
        ("tokenize", {"model": "gen", "messages": [{"role": "wizard", "content": "Hi"}]}, "messages.0.role"),
        ("tokenize", {"model": "gen", "prompt": "Hi", "add_generation_prompt": False}, "add_generation_prompt"),
        ("tokenize", {"model": "gen", "prompt": "Hi", "tools": [WEATHER]}, "tools"),
        ("tokenize", {"model": "gen", "messages": CHAT, "chat_template": "{{ x }}"}, "chat_template"),
        ("tokenize", {"model": "gen", "messages": CHAT, "continue_final_message": True}, "continue_final_message"),
        ("tokenize", {"model": "gen", "prompt": "Hi", "stream": True}, "stream"),
        ("detokenize", {"model": "gen", "tokens": []}, "tokens"),
        ("detokenize", {"model": "gen", "tokens": [1, -1]}, "tokens.1"),
        ("detokenize", {"model": "gen", "tokens": "Hi"}, "tokens"),
    ],
)
def test_malformed_requests_are_400s_naming_the_field(triton, path, body, param):
    refused(post(triton, path, body), param)
    assert triton.requests == []


def test_the_models_refusals_name_the_clients_field(triton):
    message = refused(post(triton, "detokenize", {"model": "gen", "tokens": [1, 49152]}), "tokens")
    assert message == "tokens: Token id 49152 is out of vocabulary"
    prefill = [*CHAT, {"role": "user", "content": "x"}]
    body = {"model": "gen", "messages": prefill, "add_generation_prompt": False, "continue_final_message": True}
    assert "final assistant message" in refused(post(triton, "tokenize", body), "messages")


def test_models_that_cannot_tokenize(triton):
    refused(post(triton, "tokenize", {"model": "nope", "prompt": "Hi"}), "model", 404)
    assert "does not support" in refused(post(triton, "tokenize", {"model": "emb", "prompt": "Hi"}), "model")
    assert "tokenize_only" in refused(post(triton, "tokenize", {"model": "plain", "prompt": "Hi"}), "model")
    assert "tokenize_only" in refused(post(triton, "detokenize", {"model": "plain", "tokens": [1]}), "model")
    assert triton.requests == []


def test_routes_are_vllms_under_the_prefix(triton):
    assert post(triton, "v1/tokenize", {"model": "gen", "prompt": "Hi"}).status_code == 404
    assert {"tokenize_only", "add_special_tokens", "return_token_strs"} <= {spec["name"] for spec in INPUTS}
