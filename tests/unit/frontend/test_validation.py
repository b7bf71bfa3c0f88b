"""Request edges without a server: bodies that are not text, not JSON, too deep, or hold a
lone surrogate, the rules vLLM keeps between fields, and the limits, each a 4xx in OpenAI's
shape naming the field, after which the next request is served."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.schemas.limits import (
    MAX_CHOICES,
    MAX_CONTENT_PARTS,
    MAX_LOGIT_BIAS,
    MAX_LOGPROBS,
    MAX_MESSAGES,
    MAX_N,
    MAX_PROMPT_TOKEN_IDS,
    MAX_PROMPTS,
    MAX_STOP,
)
from openai_frontend.schemas.raw import MAX_DEPTH
from tests.unit.fakes.model_server import FakeTriton, Response

OK = Response(["x"], ["stop"], [1], 3)
CHAT = [{"role": "user", "content": "Hi"}]
ENDPOINTS = {
    "completions": {"model": "gen", "prompt": "Hi"},
    "chat/completions": {"model": "gen", "messages": CHAT},
    "embeddings": {"model": "emb", "input": "Hi"},
}


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(client=FakeTriton(script=lambda m, v: [OK])), raise_server_exceptions=False)


def refused(client: TestClient, path: str, content: bytes, status: int = 400) -> dict:
    """POST raw bytes; the answer must be `status` in OpenAI's shape, and a normal request
    to the same endpoint must be served right after."""
    r = client.post(f"/openai/v1/{path}", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert client.post(f"/openai/v1/{path}", json=ENDPOINTS[path]).status_code == 200
    return error


def body(path: str, **fields) -> bytes:
    return json.dumps({**ENDPOINTS[path], **fields}).encode()


SURROGATES = [
    ("completions", b'{"model": "gen", "prompt": "a\\ud800b"}', "prompt"),
    ("completions", b'{"model": "gen", "prompt": ["ok", "\\udfff"]}', "prompt.1"),
    ("completions", b'{"model": "gen", "prompt": "x", "stop": ["\\ud83d"]}', "stop.0"),
    ("completions", b'{"model": "\\ud800", "prompt": "x"}', "model"),
    ("completions", b'{"model": "gen", "prompt": "x", "logit_bias": {"\\ud800": 1}}', "logit_bias.\\ud800"),
    ("completions", b'{"model": "gen", "prompt": "x", "\\ud800": 1}', "\\ud800"),
    ("chat/completions", b'{"model": "gen", "messages": [{"role": "user", "content": "\\ud800"}]}',
     "messages.0.content"),
    ("chat/completions", b'{"model": "gen", "messages": [{"role": "user", "content": [{"type": "text", '
     b'"text": "\\ud800"}]}]}', "messages.0.content.0.text"),
    ("chat/completions", b'{"model": "gen", "messages": [{"role": "user", "content": "x"}], '
     b'"user": "\\udc00"}', "user"),
    ("embeddings", b'{"model": "emb", "input": ["a", "\\ud800"]}', "input.1"),
    ("embeddings", b'{"model": "emb", "input": "a", "user": "\\ud800"}', "user"),
    # JSON's decoder lets UTF-8-encoded surrogates through as well (surrogatepass)
    ("completions", b'{"model": "gen", "prompt": "\xed\xa0\x80"}', "prompt"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "content", "param"), SURROGATES, ids=[s[2] for s in SURROGATES])
def test_a_lone_surrogate_is_a_400_naming_where_it_is(client, path, content, param):
    error = refused(client, path, content)
    assert error["param"] == param and "surrogate" in error["message"]
    assert error["message"].isascii() or "\\ud" in error["message"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"model": "gen", "prompt": "\xff\xfe"}', "not valid UTF-8"),
        (b'{"model": "gen", "prompt": "a\x00b"}', "not valid JSON"),  # a raw NUL: a control character
        (b'{"model": "gen", "prompt": ', "not valid JSON"),
        (b'{"model": "gen", "prompt": "x",}', "not valid JSON"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"model": "gen", "prompt": "x", "logit_bias": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too"),
    ],
    ids=["utf8", "nul", "truncated", "trailing-comma", "brackets", "deep-field"],
)
def test_a_body_that_is_not_json_is_a_400_without_a_param(client, content, says):
    error = refused(client, "completions", content)
    assert says in error["message"] and error["param"] is None


def test_json_nested_under_the_decoders_limit_is_refused_by_depth_naming_the_field(client):
    deep = {"type": "object", "properties": {}}
    for _ in range(MAX_DEPTH + 10):
        deep = {"type": "array", "items": deep}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": deep}}
    error = refused(client, "chat/completions", body("chat/completions", response_format=fmt))
    assert error["param"] == "response_format" and f"{MAX_DEPTH} levels" in error["message"]


def test_an_escaped_nul_is_text_and_is_served(client):
    r = client.post("/openai/v1/completions", content=b'{"model": "gen", "prompt": "a\\u0000b"}',
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"model": "gen", "prompt": "x"}', {"content-type": "application/x-www-form-urlencoded"}),  # curl -d
        (b'["model", "gen"]', {"content-type": "application/json"}),
        (b'"gen"', {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
    ],
    ids=["form", "array", "string", "empty"],
)
def test_a_body_that_is_not_a_json_object_says_so(client, content, headers):
    r = client.post("/openai/v1/completions", content=content, headers=headers)
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("completions", {"stream_options": {"include_usage": True}}, "stream_options"),
        ("completions", {"stream": False, "stream_options": {"include_usage": False}}, "stream_options"),
        ("chat/completions", {"stream_options": {"include_usage": True}}, "stream_options"),
        ("chat/completions", {"top_logprobs": 3}, "top_logprobs"),
        ("chat/completions", {"logprobs": False, "top_logprobs": 1}, "top_logprobs"),
    ],
)
def test_fields_that_need_another_are_refused_as_vllm_does(client, path, fields, param):
    error = refused(client, path, body(path, **fields))
    assert error["param"] == param and error["message"].startswith(f"{param}: ")


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("completions", {"stream_options": {}}),  # vLLM's rule: empty options are no options
        ("completions", {"stream_options": None}),
        ("completions", {"stream": True, "stream_options": {"include_usage": True}}),
        ("chat/completions", {"top_logprobs": 0}),
        ("chat/completions", {"logprobs": True, "top_logprobs": 2}),
    ],
)
def test_what_vllm_accepts_is_accepted(client, path, fields):
    assert client.post(f"/openai/v1/{path}", json={**ENDPOINTS[path], **fields}).status_code == 200


@pytest.mark.parametrize(
    ("path", "fields", "param", "says"),
    [
        ("completions", {"stop": ["s"] * 100}, "stop", f"at most {MAX_STOP}"),
        ("chat/completions", {"stop": ["s"] * (MAX_STOP + 1)}, "stop", f"at most {MAX_STOP}"),
        ("completions", {"n": 1_000_000}, "n", str(MAX_N)),
        ("chat/completions", {"n": MAX_N + 1}, "n", str(MAX_N)),
        ("completions", {"logprobs": 10**9}, "logprobs", str(MAX_LOGPROBS)),
        ("chat/completions", {"logprobs": True, "top_logprobs": 10**6}, "top_logprobs", str(MAX_LOGPROBS)),
        ("completions", {"prompt": ["p"] * (MAX_PROMPTS + 1)}, "prompt", f"at most {MAX_PROMPTS}"),
        ("embeddings", {"input": ["t"] * 2049}, "input", "at most 2048"),
        # OpenAI's range; vLLM's server would clamp it silently.
        ("completions", {"logit_bias": {"17": -1000}}, "logit_bias.17", "-100"),
        ("chat/completions", {"messages": CHAT * (MAX_MESSAGES + 1)}, "messages", f"at most {MAX_MESSAGES}"),
        (
            "chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * (MAX_CONTENT_PARTS + 1)}]},
            "messages.0.content",
            f"at most {MAX_CONTENT_PARTS}",
        ),
        (
            "chat/completions",
            {"logit_bias": {str(i): 1 for i in range(MAX_LOGIT_BIAS + 1)}},
            "logit_bias",
            f"at most {MAX_LOGIT_BIAS}",
        ),
        ("completions", {"prompt": [1] * (MAX_PROMPT_TOKEN_IDS + 1)}, "prompt", f"at most {MAX_PROMPT_TOKEN_IDS}"),
        (
            "completions",
            {"prompt": [[1], [1] * (MAX_PROMPT_TOKEN_IDS + 1)]},
            "prompt.1",
            f"at most {MAX_PROMPT_TOKEN_IDS}",
        ),
        ("completions", {"prompt": [[1]] * (MAX_PROMPTS + 1)}, "prompt", f"at most {MAX_PROMPTS}"),
        (
            "completions",
            {"structured_outputs": {"choice": ["a"] * (MAX_CHOICES + 1)}},
            "structured_outputs.choice",
            f"at most {MAX_CHOICES}",
        ),
    ],
)
def test_limits_are_400s_naming_the_limit(client, path, fields, param, says):
    error = refused(client, path, body(path, **fields))
    assert error["param"] == param and says in error["message"], error


def test_limits_at_their_value_are_served(client):
    assert client.post("/openai/v1/completions", json={**ENDPOINTS["completions"], "stop": ["s"] * MAX_STOP}).is_success
    fields = {"logprobs": True, "top_logprobs": MAX_LOGPROBS, "n": MAX_N}
    assert client.post("/openai/v1/chat/completions", json={**ENDPOINTS["chat/completions"], **fields}).is_success
    parts = [{"type": "text", "text": "x"}] * MAX_CONTENT_PARTS
    fields = {"messages": CHAT * (MAX_MESSAGES - 1) + [{"role": "user", "content": parts}],
              "logit_bias": {str(i): 1 for i in range(MAX_LOGIT_BIAS)}}  # fmt: skip
    assert client.post("/openai/v1/chat/completions", json={**ENDPOINTS["chat/completions"], **fields}).is_success
    fields = {"prompt": [[1] * 1000] * MAX_PROMPTS, "structured_outputs": {"choice": ["a"] * MAX_CHOICES}}
    assert client.post("/openai/v1/completions", json={**ENDPOINTS["completions"], **fields}).is_success


@pytest.mark.parametrize("name", ["../../etc/passwd", "%2e%2e", "..", "a/b/c", "/", "gen/../gen", "x" * 10_000])
def test_unknown_and_path_like_model_names_are_404_model_not_found(client, name):
    for path in ENDPOINTS:
        r = client.post(f"/openai/v1/{path}", json={**ENDPOINTS[path], "model": name})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", r.text
    assert client.post("/openai/v1/completions", json=ENDPOINTS["completions"]).status_code == 200


@pytest.mark.parametrize("path", ["%2e%2e", "..%2f..%2fetc%2fpasswd", "a/b", "%ff", "%ed%a0%80", "x" * 4000])
def test_path_like_model_ids_in_the_url_are_404s(client, path):
    r = client.get(f"/openai/v1/models/{path}")
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text
    assert client.get("/openai/v1/models/gen").status_code == 200
