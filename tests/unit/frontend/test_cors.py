"""CORS: none by default (no CORS header on any answer); with allowed origins, a browser's
preflight from one passes without the API key it cannot send, one from another origin is
refused in OpenAI's error shape, and every answer to an allowed origin (a 401 included) carries
the headers a script needs to read it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.settings import Settings, parse_list
from tests.unit.fakes.model_server import FakeTriton, Response

SITE = "https://chat.example"
CHAT = "/openai/v1/chat/completions"
KEY = "sk-test"


def client(**settings) -> TestClient:
    triton = FakeTriton(script=lambda m, v: [Response(["hi"], ["stop"], [1], 3)])
    return TestClient(create_app(Settings(api_key=KEY, **settings), client=triton), raise_server_exceptions=False)


def preflight(c: TestClient, origin: str = SITE, path: str = CHAT):
    headers = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    return c.options(path, headers=headers)


def chat(c: TestClient, key: str | None = KEY, origin: str = SITE):
    headers = {"origin": origin} | ({"authorization": f"Bearer {key}"} if key else {})
    return c.post(CHAT, json={"model": "gen", "messages": [{"role": "user", "content": "hi"}]}, headers=headers)


def cors_headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def test_by_default_no_answer_carries_a_cors_header():
    c = client()
    assert cors_headers(preflight(c)) == {}
    assert preflight(c).status_code == 405  # no CORS: an OPTIONS is a method the route does not take
    r = chat(c)
    assert r.status_code == 200 and cors_headers(r) == {}


def test_a_preflight_from_an_allowed_origin_passes_without_the_api_key():
    c = client(allowed_origins=[SITE])
    r = preflight(c)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == SITE
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    assert r.headers["x-request-id"]  # inside RequestId: counted and identified like any answer
    assert 'status="200"' in c.get("/metrics").text


def test_a_preflight_from_another_origin_is_refused_in_openais_shape():
    c = client(allowed_origins=[SITE])
    r = preflight(c, origin="https://evil.example")
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "cors_not_allowed"
    assert "origin" in error["message"]


def test_answers_to_an_allowed_origin_carry_its_headers_a_401_included():
    c = client(allowed_origins=[SITE])
    ok, refused = chat(c), chat(c, key=None)
    assert ok.status_code == 200 and refused.status_code == 401
    for r in (ok, refused):
        assert r.headers["access-control-allow-origin"] == SITE
        assert "x-request-id" in r.headers["access-control-expose-headers"]
    assert "access-control-allow-origin" not in chat(c, origin="https://evil.example").headers


def test_any_origin_with_a_star_and_credentials_echo_the_origin():
    assert chat(client(allowed_origins=["*"])).headers["access-control-allow-origin"] == "*"
    r = chat(client(allowed_origins=["*"], allow_credentials=True))
    assert r.headers["access-control-allow-origin"] == SITE  # a browser refuses "*" with credentials
    assert r.headers["access-control-allow-credentials"] == "true"


def test_methods_and_headers_can_be_narrowed():
    c = client(allowed_origins=[SITE], allowed_methods=["GET"], allowed_headers=["content-type"])
    r = preflight(c)
    assert r.status_code == 400 and "method" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("given", "parsed"),
    [('["https://a.example", "https://b.example"]', ["https://a.example", "https://b.example"]),
     ("https://a.example, https://b.example", ["https://a.example", "https://b.example"]),
     ("*", ["*"]), ("", [])],
)  # fmt: skip
def test_lists_are_taken_as_vllms_json_or_comma_separated(given, parsed, monkeypatch):
    assert parse_list(given) == parsed
    monkeypatch.setenv("TRITON_LLM_ALLOWED_ORIGINS", given)
    assert Settings().allowed_origins == parsed
