"""vLLM's request fields through the frontend, on a fake Triton: token-id prompts, the prompt's
logprobs (and echo with logprobs: defect 7), token ids, continuous usage, structured outputs,
chat template variables and truncation; the tensors they become and the responses built."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import ModelInfo
from tests.unit.fakes.model_server import FakeTriton, Response, generation_model, model_error

CHAT = [{"role": "user", "content": "Hi"}]


def lp(token_id: int, token: str, logprob: float | None, *others: tuple[int, str, float]) -> dict:
    """One position as the model sends it: the token itself first, then candidates."""
    position = {str(token_id): {"logprob": logprob, "rank": None if logprob is None else 1, "decoded_token": token}}
    position.update({str(i): {"logprob": v, "rank": 2, "decoded_token": t} for i, t, v in others})
    return position


# The prompt "Say hi" as 2 tokens, the first without a logprob; then " there" generated.
PROMPT_LOGPROBS = [lp(5, "Say", None), lp(6, " hi", -1.5, (7, " ho", -2.0))]
COMPLETION = [lp(8, " there", -0.25, (9, "!", -3.0))]


def answer(values: dict) -> list[Response]:
    """What a model of ours sends for one prompt: echo, prompt logprobs and ids when asked."""
    ids = values.get("input_ids")
    prompt_text = "Say hi" if ids is None else "decoded"
    text = " there"
    if not values["exclude_input_in_output"]:
        text = prompt_text + text
    return [
        Response(
            [text],
            ["length"],
            [1],
            2 if ids is None else len(ids),
            logprobs=[COMPLETION] if values.get("return_logprobs") else None,
            prompt_logprobs=PROMPT_LOGPROBS if values.get("return_prompt_logprobs") else None,
            token_ids=[[8]] if values.get("return_token_ids") else None,
            prompt_token_ids=[5, 6] if values.get("return_token_ids") else None,
        )
    ]


@pytest.fixture
def triton() -> FakeTriton:
    return FakeTriton(script=lambda model, values: answer(values))


@pytest.fixture
def client(triton) -> TestClient:
    return TestClient(create_app(client=triton))


def events(text: str) -> list[dict]:
    parts = [p.removeprefix("data: ") for p in text.split("\n\n") if p]
    assert parts[-1] == "[DONE]", text
    return [json.loads(p) for p in parts[:-1]]


def test_token_id_prompts_are_input_ids_one_request_each(client, triton):
    out = client.post("/openai/v1/completions", json={"model": "gen", "prompt": [[1, 2, 3], [4]]}).json()
    sent = [values["input_ids"] for values in triton.requests]
    assert [s.dtype for s in sent] == [np.int64, np.int64] and [list(s) for s in sent] == [[1, 2, 3], [4]]
    assert all("text_input" not in values for values in triton.requests)
    assert out["usage"]["prompt_tokens"] == 4 and [c["index"] for c in out["choices"]] == [0, 1]
    client.post("/openai/v1/completions", json={"model": "gen", "prompt": [1, 2]})
    assert list(triton.requests[-1]["input_ids"]) == [1, 2]


def test_a_streamed_echo_of_token_ids_is_the_models():
    triton = FakeTriton(script=lambda model, values: answer(values))
    client = TestClient(create_app(client=triton))
    body = {"model": "gen", "prompt": [5, 6], "echo": True, "stream": True}
    chunks = events(client.post("/openai/v1/completions", json=body).text)
    assert triton.requests[0]["exclude_input_in_output"] is False  # only the model can decode ids
    assert chunks[0]["choices"][0]["text"] == "decoded there"


@pytest.mark.parametrize("stream", [False, True])
def test_echo_with_logprobs_starts_with_the_prompts_tokens(client, triton, stream):
    """Defect 7: the prompt's tokens come first, the first with null logprob and candidates."""
    body = {"model": "gen", "prompt": "Say hi", "echo": True, "logprobs": 1, "stream": stream}
    r = client.post("/openai/v1/completions", json=body)
    choice = events(r.text)[0]["choices"][0] if stream else r.json()["choices"][0]
    assert triton.requests[0]["sampling_parameters"]["prompt_logprobs"] == 1  # vLLM's rule
    assert choice["text"] == "Say hi there"
    assert choice["logprobs"] == {
        "tokens": ["Say", " hi", " there"],
        "token_logprobs": [None, -1.5, -0.25],
        "top_logprobs": [None, {" hi": -1.5, " ho": -2.0}, {" there": -0.25, "!": -3.0}],
        "text_offset": [0, 3, 6],
    }
    if not stream:  # as vLLM, the choice carries the prompt logprobs it was given
        assert choice["prompt_logprobs"] == [None, PROMPT_LOGPROBS[1]]


def test_prompt_logprobs_and_token_ids_where_vllm_puts_them(client, triton):
    body = {"model": "gen", "prompt": "Say hi", "prompt_logprobs": 1, "return_token_ids": True}
    choice = client.post("/openai/v1/completions", json=body).json()["choices"][0]
    assert choice["prompt_logprobs"] == [None, PROMPT_LOGPROBS[1]]
    assert choice["prompt_token_ids"] == [5, 6] and choice["token_ids"] == [8]
    assert triton.requests[0]["return_prompt_logprobs"] is True and triton.requests[0]["return_token_ids"] is True
    body.pop("prompt")
    out = client.post("/openai/v1/chat/completions", json={"model": "gen", "messages": CHAT, **body}).json()
    assert out["prompt_logprobs"] == [None, PROMPT_LOGPROBS[1]] and out["prompt_token_ids"] == [5, 6]
    assert out["choices"][0]["token_ids"] == [8]
    # Not asked for: not there (OpenAI's responses have no such fields).
    plain = client.post("/openai/v1/completions", json={"model": "gen", "prompt": "x"}).json()
    assert set(plain["choices"][0]) == {"index", "text", "logprobs", "finish_reason"}
    assert "return_token_ids" not in triton.requests[-1] and "return_prompt_logprobs" not in triton.requests[-1]


def test_streamed_token_ids_and_continuous_usage(client):
    options = {"include_usage": True, "continuous_usage_stats": True}
    body = {"model": "gen", "prompt": "Say hi", "stream": True, "return_token_ids": True, "stream_options": options}
    chunks = events(client.post("/openai/v1/completions", json=body).text)
    assert chunks[0]["choices"][0]["token_ids"] == [8] and chunks[0]["choices"][0]["prompt_token_ids"] == [5, 6]
    assert chunks[0]["usage"] == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 3
    chat = events(client.post("/openai/v1/chat/completions", json={"model": "gen", "messages": CHAT, **{
        k: v for k, v in body.items() if k != "prompt"}}).text)  # fmt: skip
    # vLLM's first chunk: the role, the prompt's ids and its usage before any completion token.
    assert chat[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chat[0]["prompt_token_ids"] == [5, 6] and chat[0]["usage"]["completion_tokens"] == 0
    assert chat[1]["choices"][0]["token_ids"] == [8] and chat[1]["usage"]["completion_tokens"] == 1


def test_sampling_fields_go_to_the_model_with_vllms_names(client, triton):
    structured = {"regex": "[0-9]+", "disable_any_whitespace": True}
    body = {"model": "gen", "prompt": "x", "structured_outputs": structured, "truncate_prompt_tokens": -1}
    client.post("/openai/v1/completions", json=body)
    sampling = triton.requests[-1]["sampling_parameters"]
    assert sampling["structured_outputs"] == structured and sampling["truncate_prompt_tokens"] == -1
    kwargs = {"enable_thinking": False}
    client.post("/openai/v1/chat/completions", json={"model": "gen", "messages": CHAT, "chat_template_kwargs": kwargs})
    assert triton.requests[-1]["chat_template_kwargs"] == kwargs
    body = {"model": "gen", "messages": CHAT, "structured_outputs": {"json": {"type": "object"}}}
    client.post("/openai/v1/chat/completions", json=body)
    assert triton.requests[-1]["sampling_parameters"]["structured_outputs"] == {"json": {"type": "object"}}


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("completions", {"structured_outputs": {"regex": "a", "choice": ["b"]}}, "structured_outputs"),
        ("completions", {"structured_outputs": {}}, "structured_outputs"),
        ("completions", {"structured_outputs": {"regexp": "a"}}, "structured_outputs.regexp"),
        ("completions", {"prompt_logprobs": 1, "stream": True}, "prompt_logprobs"),
        ("completions", {"prompt_logprobs": -2}, "prompt_logprobs"),
        ("completions", {"truncate_prompt_tokens": -2}, "truncate_prompt_tokens"),
        ("chat/completions", {"chat_template_kwargs": [1]}, "chat_template_kwargs"),
        ("chat/completions", {"structured_outputs": {"regex": "a"}, "response_format": {"type": "json_object"}},
         "structured_outputs"),
    ],
)  # fmt: skip
def test_bad_vllm_fields_are_400s_naming_them(client, path, fields, param):
    body = {"model": "gen", **({"prompt": "x"} if path == "completions" else {"messages": CHAT}), **fields}
    r = client.post(f"/openai/v1/{path}", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_a_refused_structured_output_names_the_field_the_client_sent():
    error = model_error("sampling_parameters.structured_outputs", "is not supported by the huggingface backend")
    client = TestClient(create_app(client=FakeTriton(script=lambda model, values: [error])))
    body = {"model": "gen", "messages": CHAT, "structured_outputs": {"regex": "a"}}
    assert client.post("/openai/v1/chat/completions", json=body).json()["error"]["param"] == "structured_outputs"
    body = {"model": "gen", "messages": CHAT, "response_format": {"type": "json_object"}}
    assert client.post("/openai/v1/chat/completions", json=body).json()["error"]["param"] == "response_format"


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("completions", {"prompt": [1, 2]}, "prompt"),
        ("completions", {"prompt": "x", "echo": True, "logprobs": 1}, "echo"),
        ("completions", {"prompt": "x", "prompt_logprobs": 0}, "prompt_logprobs"),
        ("completions", {"prompt": "x", "return_token_ids": True}, "return_token_ids"),
        ("chat/completions", {"messages": CHAT, "chat_template_kwargs": {"a": 1}}, "chat_template_kwargs"),
    ],
)
def test_a_model_without_our_tensors_is_not_sent_them(path, fields, param):
    """A vllm_backend model declares none of our optional tensors: a 400 names the field."""
    plain = ModelInfo("plain", ready=True, generate=True, chat=True, embed=False, created=0,
                      inputs=frozenset({"text_input", "messages", "stream", "sampling_parameters"}))  # fmt: skip
    triton = FakeTriton(models_=[plain, generation_model("gen")], script=lambda model, values: answer(values))
    r = TestClient(create_app(client=triton)).post(f"/openai/v1/{path}", json={"model": "plain", **fields})
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert "plain" in r.json()["error"]["message"] and triton.requests == []


def test_an_out_of_vocabulary_token_id_names_prompt():
    error = model_error("input_ids", "Token id 99999 is out of vocabulary")
    client = TestClient(create_app(client=FakeTriton(script=lambda model, values: [error])))
    r = client.post("/openai/v1/completions", json={"model": "gen", "prompt": [1, 99999]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    assert "out of vocabulary" in r.json()["error"]["message"]
