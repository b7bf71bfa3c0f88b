"""Hand-written edge inputs against the real frontend and Triton: each is a 4xx in OpenAI's
error shape (naming the field where there is one), and the next normal request is served.

The same cases run without a server in tests/unit/frontend/test_validation.py; here they
also cross uvicorn's HTTP parser, the gRPC client and the engines.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
import requests

MODEL = "smollm2"
BODIES = {
    "completions": {"model": MODEL, "prompt": "Hi", "max_tokens": 1},
    "chat/completions": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1},
    "embeddings": {"model": "minilm", "input": "Hi"},
}
# Routes of encoder models, for the integer rule's tests.
SCORING = {
    "rerank": {"model": "bert-cross-encoder", "query": "Hi", "documents": ["a", "b"]},
    "score": {"model": "bert-cross-encoder", "text_1": "Hi", "text_2": ["a", "b"]},
}


def post(frontend, path: str, content: bytes | dict, **kwargs) -> requests.Response:
    if isinstance(content, dict):
        content = json.dumps(content).encode()
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    return requests.post(f"{frontend.url}/openai/v1/{path}", data=content, headers=headers, timeout=60, **kwargs)


def refused(frontend, path: str, content: bytes | dict, status: int = 400, param: str | None = None) -> dict:
    """The error of a refused request, checked for OpenAI's shape and `param`; then a normal
    request to the same endpoint must be served."""
    r = post(frontend, path, content)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param, error
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    assert error["type"] == kind and "Traceback" not in error["message"]
    assert post(frontend, path, {**BODIES, **SCORING}[path]).status_code == 200
    return error


def with_fields(path: str, **fields) -> dict:
    return {**BODIES[path], **fields}


@pytest.mark.parametrize("path", list(BODIES))
def test_invalid_utf8_bytes(frontend, path):
    raw = json.dumps(BODIES[path]).encode().replace(b'"Hi"', b'"H\xff\xfei"')
    assert "not valid UTF-8" in refused(frontend, path, raw)["message"]


@pytest.mark.parametrize("path", list(BODIES))
def test_a_raw_nul_byte(frontend, path):
    raw = json.dumps(BODIES[path]).encode().replace(b'"Hi"', b'"H\x00i"')
    assert "not valid JSON" in refused(frontend, path, raw)["message"]


def test_an_escaped_nul_is_text_and_is_served(frontend):
    raw = json.dumps(with_fields("completions", prompt="a\u0000b")).encode()
    assert b"\\u0000" in raw
    r = post(frontend, "completions", raw)
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] > 1, r.text
    body = with_fields("chat/completions", messages=[{"role": "user", "content": "\u0000"}])
    assert post(frontend, "chat/completions", body).status_code == 200


@pytest.mark.parametrize(
    ("path", "raw", "param"),
    [
        ("completions", b'{"model": "smollm2", "prompt": "a\\ud800", "max_tokens": 1}', "prompt"),
        ("completions", b'{"model": "smollm2", "prompt": ["x", "\\udfff"], "max_tokens": 1}', "prompt.1"),
        ("completions", b'{"model": "smollm2", "prompt": "x", "stop": ["\\ud800"]}', "stop.0"),
        ("completions", b'{"model": "\\ud800", "prompt": "x"}', "model"),
        ("chat/completions", b'{"model": "smollm2", "messages": [{"role": "user", "content": "\\ud800"}]}',
         "messages.0.content"),
        ("embeddings", b'{"model": "minilm", "input": ["ok", "\\ud800"]}', "input.1"),
        ("embeddings", b'{"model": "minilm", "input": "x", "user": "\\udc00"}', "user"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_names_its_field(frontend, path, raw, param):
    assert "surrogate" in refused(frontend, path, raw, param=param)["message"]


@pytest.mark.parametrize("path", list(BODIES))
def test_deeply_nested_json_is_refused_fast(frontend, path):
    started = time.monotonic()
    assert "nested too deeply" in refused(frontend, path, b"[" * 100_000 + b"]" * 100_000)["message"]
    assert time.monotonic() - started < 5  # the refusal, and one served request


def test_nesting_under_the_parsers_limit_names_the_field(frontend):
    deep: object = "x"
    for _ in range(500):
        deep = [deep]
    refused(frontend, "completions", with_fields("completions", logit_bias={"1": deep}), param="logit_bias")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_40_mb_body_is_a_413_before_it_is_read(frontend, chunked):
    raw = json.dumps(with_fields("completions", prompt="word " * 8_000_000)).encode()
    assert len(raw) > 40_000_000
    started = time.monotonic()
    content = (raw[i : i + 65536] for i in range(0, len(raw), 65536)) if chunked else raw
    error = refused(frontend, "completions", content, status=413)
    assert error["code"] == "request_too_large" and "33554432 bytes" in error["message"]
    assert time.monotonic() - started < 5


def test_a_100_element_stop(frontend):
    error = refused(frontend, "completions", with_fields("completions", stop=["x"] * 100), param="stop")
    assert "at most 16" in error["message"]
    refused(frontend, "chat/completions", with_fields("chat/completions", stop=["x"] * 100), param="stop")


@pytest.mark.parametrize("n", [17, 1000, 10**12])
def test_n_far_above_the_limit(frontend, n):
    refused(frontend, "completions", with_fields("completions", n=n), param="n")
    refused(frontend, "chat/completions", with_fields("chat/completions", n=n), param="n")


@pytest.mark.parametrize("value", [2**63, 2**80], ids=["2^63", "2^80"])
@pytest.mark.parametrize(
    ("path", "field"),
    [
        # Request parameters of an encoder model: tritonclient refused them as int64, a 500.
        ("embeddings", "dimensions"),
        ("embeddings", "truncate_prompt_tokens"),
        ("rerank", "truncate_prompt_tokens"),
        ("score", "truncate_prompt_tokens"),
        # Sampling parameters: the engine refused them; now the frontend does, as for every integer.
        ("completions", "max_tokens"),
        ("chat/completions", "seed"),
    ],
)
def test_an_integer_beyond_int64_is_a_400_naming_its_field(frontend, path, field, value):
    error = refused(frontend, path, {**BODIES, **SCORING}[path] | {field: value}, param=field)
    assert "64 bits" in error["message"], error


def test_an_integer_beyond_int64_in_a_string_or_a_token_list_is_refused_too(frontend):
    refused(frontend, "embeddings", with_fields("embeddings", dimensions=str(2**63)), param="dimensions")
    refused(frontend, "completions", with_fields("completions", prompt=[[1, 2], [2**64]]), param="prompt.1.0")
    refused(frontend, "completions", with_fields("completions", logit_bias={str(2**63): 1}), param="logit_bias")


def test_huge_logprobs(frontend):
    error = refused(frontend, "completions", with_fields("completions", logprobs=10**9), param="logprobs")
    assert "less than or equal to 20" in error["message"]
    body = with_fields("chat/completions", logprobs=True, top_logprobs=10**6)
    refused(frontend, "chat/completions", body, param="top_logprobs")


@pytest.mark.parametrize("name", ["../../etc/passwd", "%2e%2e", "..", "org/model", "/etc/passwd", "smollm2/../minilm"])
def test_unknown_and_path_like_model_names(frontend, name):
    for path in BODIES:
        error = refused(frontend, path, with_fields(path, model=name), status=404, param="model")
        assert error["code"] == "model_not_found"


@pytest.mark.parametrize("model_id", ["%2e%2e", "..%2f..%2fetc%2fpasswd", "org/model", "%ff", "x" * 2000])
def test_path_like_model_ids_in_the_url(frontend, model_id):
    r = requests.get(f"{frontend.url}/openai/v1/models/{model_id}", timeout=10)
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text
    assert requests.get(f"{frontend.url}/openai/v1/models/{MODEL}", timeout=10).status_code == 200


@pytest.mark.parametrize("path", ["completions", "chat/completions"])
def test_stream_options_without_stream(frontend, path):
    body = with_fields(path, stream_options={"include_usage": True})
    refused(frontend, path, body, param="stream_options")


def test_top_logprobs_without_logprobs(frontend):
    refused(frontend, "chat/completions", with_fields("chat/completions", top_logprobs=2), param="top_logprobs")


def test_streamed_text_offset_is_cumulative_as_non_streamed(frontend):
    body = {"model": MODEL, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0, "logprobs": 1}
    whole = post(frontend, "completions", body).json()["choices"][0]["logprobs"]
    offsets: list[int] = []
    with httpx.stream("POST", f"{frontend.url}/openai/v1/completions", json={**body, "stream": True}, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line.removeprefix("data: "))["choices"]:
                    offsets += (choice["logprobs"] or {}).get("text_offset", [])
    assert len(offsets) == 8 and offsets == whole["text_offset"]
    assert offsets == sorted(offsets) and offsets[-1] > 0


def test_x_request_id_is_echoed_or_generated(frontend):
    r = post(frontend, "completions", BODIES["completions"], headers={"x-request-id": "edge-trace-42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "edge-trace-42"
    generated = post(frontend, "completions", BODIES["completions"], headers={"x-request-id": "bad id\t"})
    assert generated.headers["x-request-id"] not in ("", "bad id\t")
    assert post(frontend, "completions", b"{").headers["x-request-id"]  # errors too
