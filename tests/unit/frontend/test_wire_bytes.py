"""Every route's answers, byte for byte, against a recorded copy (wire_bytes.json): a refactor
of the routers or the serving layer must leave chunks, responses and error messages as they
were. Ids and `created` are random or the clock's, so they are masked before comparing.

Each case is one request to a fake Triton whose models answer from a script that covers what
the frontend builds from (n, logprobs, echo, token ids, prompt logprobs, tool calls and
reasoning, sparse outputs, errors before and inside a stream). After a deliberate change of
what goes on the wire, record again with `RECORD_WIRE_BYTES=1` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import ModelInfo
from openai_frontend.errors import from_triton
from tests.unit.fakes.model_server import (
    FakeTriton,
    Response,
    TritonError,
    embedding_model,
    generation_model,
    model_error,
)
from tests.unit.frontend.test_rerank import FakeScorer, cross_encoder
from tests.unit.frontend.tool_chat import TOOLS, tool_model
from tests.unit.frontend.tool_chat import answer as tool_answer

RECORDED = Path(__file__).with_name("wire_bytes.json")
CHAT = [{"role": "user", "content": "Hi"}]
PIECES = [["He", "llo", " world"], ["Yo", "!", ""], ["A", "", "b"]]  # per choice, per step
ERRORS = {  # a prompt that makes the model refuse one of its inputs (or fail mid-stream)
    "bad prompt": [model_error("text_input", "is too long")],
    "bad max": [model_error("sampling_parameters.max_tokens", "too many")],
    "bad format": [model_error("sampling_parameters.structured_outputs", "no grammar")],
    "bad late": [Response(["Hel"], ["None"], [1], 3), model_error("sampling_parameters.stop", "bad stop")],
    "gone": [Response(["A"], ["None"], [1], 2), TritonError("Socket closed", "StatusCode.UNAVAILABLE")],
    "full": [TritonError(json.dumps({"message": "busy", "type": "overloaded", "retry_after": 2}))],
}


def _position(token_id: int, token: str) -> dict:
    """A logprobs position: the sampled token first, then one other candidate."""
    return {
        str(token_id): {"logprob": -0.25 * (token_id % 5), "rank": 1, "decoded_token": token},
        str(token_id + 1000): {"logprob": -3.5, "rank": 2, "decoded_token": token.upper() + "x"},
    }


def _script(model: str, values: dict[str, Any]) -> list[Response | TritonError]:
    prompt = values.get("text_input") or (values["messages"][-1]["content"] if "messages" in values else "")
    if prompt in ERRORS:
        return ERRORS[prompt]
    sampling = values["sampling_parameters"]
    n = sampling.get("n", 1)
    choices = [PIECES[c % len(PIECES)] for c in range(n)]
    steps = range(3) if values["stream"] else [None]
    prompt_ids = [5, 6, 7] if "input_ids" not in values else [int(i) for i in values["input_ids"]]
    out = []
    for s in steps:
        texts = [p[s] if s is not None else "".join(p) for p in choices]
        if s in (0, None) and not values["exclude_input_in_output"]:
            texts = [(prompt if isinstance(prompt, str) else "") + t for t in texts]
        last = s in (2, None)
        response = Response(
            texts,
            [("length" if c % 2 else "stop") if last else "None" for c in range(n)],
            [len(t) for t in texts],
            len(prompt_ids),
        )
        if values.get("return_logprobs"):
            response.logprobs = [[_position(10 * c + i, ch) for i, ch in enumerate(t)] for c, t in enumerate(texts)]
        if values.get("return_token_ids"):
            response.token_ids = [[100 + ord(ch) for ch in t] for t in texts]
            if s in (0, None):
                response.prompt_token_ids = prompt_ids
        if values.get("return_prompt_logprobs") and s in (0, None):
            first = {str(prompt_ids[0]): {"logprob": None, "rank": None, "decoded_token": "p0"}}
            response.prompt_logprobs = [first] + [_position(i, f"p{i}") for i in prompt_ids[1:]]
        out.append(response)
    if values.get("sparse_outputs"):
        for response in out[1:]:
            response.num_input_tokens = None
    return out


class WireTriton(FakeScorer):
    """Generation by `_script`, tool calls by test_tools' model, `tokenize_only` by counting
    characters, and test_rerank's encoders."""

    async def generate(self, model, values, request_id=""):
        if values.get("tokenize_only"):
            self.requests.append(values)
            async for outputs in self._tokenize(values):
                yield outputs
            return
        async for outputs in FakeTriton.generate(self, model, values, request_id):
            yield outputs

    async def _tokenize(self, values):
        text = values.get("text_input") or json.dumps(values.get("messages"))
        if "input_ids" in values:
            ids = [int(i) for i in values["input_ids"]]
            if 0 in ids:
                raise from_triton(model_error("input_ids", "token 0 is not in the vocabulary").message)
            yield {"text_output": np.array(["".join(chr(96 + i % 26) for i in ids).encode()], dtype=np.object_)}
            return
        if "refuse" in text:
            raise from_triton(model_error("text_input", "is too long").message)
        ids = [ord(ch) for ch in text[:12]]
        outputs = {"prompt_token_ids": np.array(ids, np.int64), "max_model_len": np.array([2048], np.int64)}
        if values.get("return_token_strs"):
            outputs["token_strs"] = np.array([ch.encode() for ch in text[:12]], dtype=np.object_)
        yield outputs


def _models() -> list[ModelInfo]:
    bare = replace(generation_model("bare"), inputs=frozenset({"text_input", "messages", "sampling_parameters"}))
    return [
        replace(generation_model("gen"), adapters=("gen-lora",)),
        generation_model("sparse", sparse=True),
        tool_model("tools"),
        bare,
        embedding_model("emb", max_batch_size=3),
        cross_encoder(),
        replace(generation_model("loading"), ready=False),
    ]


def _triton() -> WireTriton:
    fake = WireTriton(models_=_models())
    fake.script = lambda model, values: tool_answer(model, values) if model == "tools" else _script(model, values)
    return fake


def _cases() -> dict[str, tuple[str, str, dict | None]]:
    """name -> (method, path under /openai, body)."""
    cases: dict[str, tuple[str, str, dict | None]] = {}
    completions = {
        "plain": {"prompt": "Say"},
        "n2-two-prompts": {"prompt": ["Say", "Tell"], "n": 2},
        "logprobs": {"prompt": "Say", "logprobs": 2},
        "echo": {"prompt": "Say", "echo": True},
        "echo-logprobs": {"prompt": "Say", "echo": True, "logprobs": 1},
        "echo-prompt-logprobs": {"prompt": "Say", "echo": True, "logprobs": 1, "prompt_logprobs": 1},
        "token-ids": {"prompt": "Say", "return_token_ids": True, "n": 2},
        "echo-token-ids": {"prompt": [1, 2, 3], "return_token_ids": True, "echo": True},
        "id-prompt": {"prompt": [1, 2, 3], "logprobs": 0},
        "prompt-logprobs": {"prompt": "Say", "prompt_logprobs": 2},
        "lora": {"prompt": "Say", "model": "gen-lora"},
        "error-prompt": {"prompt": "bad prompt"},
        "error-max": {"prompt": "bad max"},
        "full": {"prompt": "full"},
        "undeclared": {"prompt": "Say", "echo": True, "logprobs": 1, "model": "bare"},
        "unknown-model": {"prompt": "Say", "model": "nope"},
        "not-ready": {"prompt": "Say", "model": "loading"},
        "embedding-model": {"prompt": "Say", "model": "emb"},
    }
    streamed = {
        "stream": {"prompt": "Say"},
        "stream-n2-usage": {"prompt": ["Say", "Tell"], "n": 2, "stream_options": {"include_usage": True}},
        "stream-continuous": {
            "prompt": "Say", "n": 2,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        },
        "stream-logprobs": {"prompt": "Say", "logprobs": 1, "n": 2},
        "stream-echo": {"prompt": "Say", "echo": True, "logprobs": 1},
        "stream-echo-ids": {"prompt": [1, 2], "echo": True, "logprobs": 1},
        "stream-token-ids": {"prompt": "Say", "return_token_ids": True, "echo": True},
        "stream-sparse": {"prompt": "Say", "model": "sparse", "n": 3, "stream_options": {"include_usage": True}},
        "stream-error-first": {"prompt": "bad max"},
        "stream-error-late": {"prompt": "bad late"},
        "stream-gone": {"prompt": "gone"},
    }  # fmt: skip
    for name, body in completions.items():
        cases[f"completions-{name}"] = ("POST", "/v1/completions", {"model": "gen", **body})
    for name, body in streamed.items():
        cases[f"completions-{name}"] = ("POST", "/v1/completions", {"model": "gen", "stream": True, **body})
    chat = {
        "plain": {},
        "n3": {"n": 3},
        "logprobs": {"logprobs": True, "top_logprobs": 2},
        "token-ids": {"return_token_ids": True, "n": 2},
        "prompt-logprobs": {"prompt_logprobs": 1},
        "max-completion-tokens": {"max_completion_tokens": 5, "messages": [{"role": "user", "content": "bad max"}]},
        "max-tokens": {"max_tokens": 5, "messages": [{"role": "user", "content": "bad max"}]},
        "format": {"response_format": {"type": "json_object"}, "messages": [{"role": "user", "content": "bad format"}]},
        "structured": {"structured_outputs": {"regex": "a+"}, "messages": [{"role": "user", "content": "bad format"}]},
        "template-flag": {"add_generation_prompt": False, "model": "bare"},
        "template-kwargs": {"chat_template_kwargs": {"x": 1}, "model": "bare"},
        "tools": {"tools": TOOLS, "n": 2, "model": "tools"},
        "tools-required": {"tools": TOOLS, "tool_choice": "required", "model": "tools"},
        "error": {"messages": [{"role": "user", "content": "bad prompt"}]},
    }
    for name, body in chat.items():
        cases[f"chat-{name}"] = ("POST", "/v1/chat/completions", {"model": "gen", "messages": CHAT, **body})
    chat_streamed = {
        "stream": {"n": 2},
        "stream-usage": {"stream_options": {"include_usage": True}},
        "stream-continuous": {"n": 2, "stream_options": {"include_usage": True, "continuous_usage_stats": True}},
        "stream-logprobs": {"logprobs": True, "top_logprobs": 1},
        "stream-token-ids": {"return_token_ids": True, "n": 2},
        "stream-token-ids-usage": {
            "return_token_ids": True, "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        },
        "stream-sparse": {"model": "sparse", "n": 2, "stream_options": {"include_usage": True}},
        "stream-tools": {"tools": TOOLS, "n": 2, "model": "tools"},
        "stream-error-late": {"messages": [{"role": "user", "content": "bad late"}]},
        "stream-error-first": {"messages": [{"role": "user", "content": "bad max"}], "max_completion_tokens": 3},
        "stream-gone": {"messages": [{"role": "user", "content": "gone"}]},
    }  # fmt: skip
    for name, body in chat_streamed.items():
        full = {"model": "gen", "messages": CHAT, "stream": True, **body}
        cases[f"chat-{name}"] = ("POST", "/v1/chat/completions", full)
    embeddings = {
        "floats": {"input": ["a b", "c", "d e f", "g", "h"]},
        "base64": {"input": "a b", "encoding_format": "base64", "dimensions": 2},
        "refused": {"input": ["a", "b", "c", "d", "refuse me"]},
        "chat-model": {"input": "a", "model": "gen"},
    }
    for name, body in embeddings.items():
        cases[f"embeddings-{name}"] = ("POST", "/v1/embeddings", {"model": "emb", **body})
    docs = ["a b", "a b c d", "a", "a b c"]
    scoring = {
        "rerank-ce": ("/v1/rerank", {"model": "ce", "query": "q", "documents": docs, "top_n": 3}),
        "rerank-emb": ("/rerank", {"model": "emb", "query": "a", "documents": docs, "return_documents": False}),
        "rerank-one": ("/v2/rerank", {"model": "ce", "query": "q", "documents": "a b"}),
        "rerank-refused": ("/v1/rerank", {"model": "ce", "query": "q", "documents": ["a", "b", "c", "d", "refuse me"]}),
        "rerank-emb-refused": ("/v1/rerank", {"model": "emb", "query": "refuse me", "documents": docs}),
        "rerank-emb-refused-doc": ("/v1/rerank", {"model": "emb", "query": "q", "documents": [*docs, "refuse me"]}),
        "rerank-param": ("/v1/rerank", {"model": "ce", "query": "q", "documents": ["refuse param"]}),
        "score-1n": ("/v1/score", {"model": "ce", "text_1": "q", "text_2": docs}),
        "score-nn": ("/score", {"model": "emb", "queries": ["a", "a b"], "documents": ["c", "d"]}),
        "score-refused": ("/v1/score", {"model": "ce", "data_1": ["a", "b"], "data_2": ["c", "refuse me"]}),
        "score-emb-refused": ("/v1/score", {"model": "emb", "text_1": ["a", "b"], "text_2": ["refuse me", "d"]}),
        "score-gen": ("/v1/score", {"model": "gen", "text_1": "a", "text_2": "b"}),
    }
    for name, (path, body) in scoring.items():
        cases[name] = ("POST", path, body)
    tokenize = {
        "tokenize-prompt": ("/tokenize", {"model": "gen", "prompt": "Hello there", "return_token_strs": True}),
        "tokenize-messages": ("/tokenize", {"model": "gen", "messages": CHAT, "add_generation_prompt": False}),
        "tokenize-refused": ("/tokenize", {"model": "gen", "prompt": "refuse me"}),
        "tokenize-chat-refused": ("/tokenize", {"model": "gen", "messages": [{"role": "user", "content": "refuse"}]}),
        "tokenize-no-model": ("/tokenize", {"prompt": "Hi"}),
        "tokenize-bare": ("/tokenize", {"model": "bare", "prompt": "Hi"}),
        "tokenize-emb": ("/tokenize", {"model": "emb", "prompt": "Hi"}),
        "detokenize": ("/detokenize", {"model": "gen", "tokens": [1, 2, 3]}),
        "detokenize-refused": ("/detokenize", {"model": "gen", "tokens": [1, 0]}),
        "detokenize-lora": ("/detokenize", {"model": "gen-lora", "tokens": [4]}),
    }
    for name, (path, body) in tokenize.items():
        cases[name] = ("POST", path, body)
    for name, path in {
        "models": "/v1/models",
        "model": "/v1/models/gen",
        "model-adapter": "/v1/models/gen-lora",
        "model-missing": "/v1/models/nope",
        "model-not-ready": "/v1/models/loading",
    }.items():
        cases[name] = ("GET", path, None)
    return cases


CASES = _cases()
_MASKS = [
    (re.compile(r'"id": ?"(chatcmpl|cmpl)-[0-9a-f]{32}"'), r'"id":"\1-*"'),
    (re.compile(r'"created": ?\d+'), '"created":0'),
]


def _answer(name: str) -> dict[str, Any]:
    method, path, body = CASES[name]
    triton = _triton()
    triton.refuse = {
        "refuse me": lambda row: model_error(f"text_input[{row}]", "is too long"),
        "refuse param": model_error("truncate_prompt_tokens", "is over the limit"),
    }
    client = TestClient(create_app(client=triton))
    headers = {"x-request-id": "req-1"}
    r = client.request(method, "/openai" + path, json=body, headers=headers)
    text = r.text
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return {"status": r.status_code, "type": r.headers.get("content-type"), "body": text}


def _record() -> dict[str, Any]:
    return {name: _answer(name) for name in CASES}


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    if os.environ.get("RECORD_WIRE_BYTES"):
        RECORDED.write_text(json.dumps(_record(), indent=1, ensure_ascii=False) + "\n")
    return json.loads(RECORDED.read_text())


def test_every_case_is_recorded(recorded):
    assert sorted(recorded) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_answer_is_the_recorded_one(recorded, name):
    assert _answer(name) == recorded[name]
