"""The request log: off by default (not in the middleware chain, no line); on, one JSON line
per request with its id, route, status, model, the models' token counts (streamed or not, asked
for or not) and timings; prompts only when asked, cut at the maximum length; never the key."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.request_log import RequestLog
from openai_frontend.settings import Settings
from tests.unit.fakes.model_server import FakeTriton, Response, TritonError

KEY = "sk-secret-key-1234"
HEADERS = {"authorization": f"Bearer {KEY}", "x-request-id": "req-42"}
# Two responses: the prompt's count repeated, two then three output tokens.
SCRIPT = [Response(["Hel"], ["None"], [2], 7), Response(["lo"], ["stop"], [3], 7)]


def app(**settings) -> TestClient:
    triton = FakeTriton(script=lambda m, v: list(SCRIPT))
    return TestClient(create_app(Settings(api_key=KEY, **settings), client=triton), raise_server_exceptions=False)


def lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "openai_frontend.requests"]


def chat(c: TestClient, content: str = "hi", headers: dict = HEADERS, **extra):
    body = {"model": "gen", "messages": [{"role": "user", "content": content}], **extra}
    return c.post("/openai/v1/chat/completions", json=body, headers=headers)


def test_off_by_default_no_middleware_and_no_line(caplog):
    c = app()
    assert not any(m.cls is RequestLog for m in c.app.user_middleware)
    with caplog.at_level(logging.DEBUG):
        assert chat(c).status_code == 200
    assert lines(caplog) == []


def test_a_line_per_request_with_its_fields(caplog):
    c = app(log_requests=True)
    with caplog.at_level(logging.INFO, logger="openai_frontend.requests"):
        r = chat(c)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5
    (line,) = lines(caplog)
    assert line.pop("total_ms") >= 0
    assert line == {
        "id": "req-42",
        "method": "POST",
        "route": "/openai/v1/chat/completions",
        "status": 200,
        "model": "gen",
        "prompt_tokens": 7,
        "completion_tokens": 5,
        "client": "testclient",
    }  # no prompt, no time to first byte (not streamed)


def test_a_stream_has_its_tokens_and_its_time_to_first_byte(caplog):
    c = app(log_requests=True)
    with caplog.at_level(logging.INFO, logger="openai_frontend.requests"):
        r = chat(c, stream=True)  # no include_usage: the client gets no usage, the log does
    assert r.status_code == 200 and "usage" not in r.text
    (line,) = lines(caplog)
    assert (line["prompt_tokens"], line["completion_tokens"]) == (7, 5)
    assert 0 <= line["ttfb_ms"] <= line["total_ms"]


def test_embeddings_have_prompt_tokens_only(caplog):
    c = app(log_requests=True)
    with caplog.at_level(logging.INFO, logger="openai_frontend.requests"):
        r = c.post("/openai/v1/embeddings", json={"model": "emb", "input": ["a b", "c d e"]}, headers=HEADERS)
    assert r.status_code == 200
    (line,) = lines(caplog)
    assert line["prompt_tokens"] == 5 and "completion_tokens" not in line and line["model"] == "emb"


def test_refusals_have_their_lines_and_never_the_key(caplog):
    c = app(log_requests=True, log_prompts=True, max_body_bytes=3000)
    with caplog.at_level(logging.INFO, logger="openai_frontend.requests"):
        chat(c, headers={"authorization": f"Bearer {KEY}x"})  # a wrong key: 401
        chat(c, content="x" * 4000)  # 413, before parsing
        c.get("/openai/v1/models", headers=HEADERS)
        chat(c, model_extra=1)
    statuses = [(line["status"], line["route"]) for line in lines(caplog)]
    assert statuses == [
        (401, "/openai/v1/chat/completions"), (413, "unmatched"), (200, "/openai/v1/models"),
        (400, "/openai/v1/chat/completions"),
    ]  # fmt: skip
    assert KEY not in caplog.text and "authorization" not in json.dumps(lines(caplog)).lower()


def test_prompts_only_when_asked_cut_at_the_maximum_length(caplog):
    with caplog.at_level(logging.INFO, logger="openai_frontend.requests"):
        chat(app(log_requests=True), content="a secret prompt")
        chat(app(log_prompts=True, max_log_len=40), content="x" * 100)
        chat(app(log_prompts=True), content="short")
    without, cut, whole = lines(caplog)
    assert "prompt" not in without and "a secret prompt" not in caplog.text
    assert len(cut["prompt"]) == 40 and cut["prompt_cut"] is True
    assert json.loads(whole["prompt"]) == {"messages": [{"role": "user", "content": "short"}]}
    assert "prompt_cut" not in whole


def test_a_lone_surrogate_in_a_logged_prompt_does_not_break_the_line(caplog):
    c = app(log_prompts=True)
    with caplog.at_level(logging.INFO, logger="openai_frontend.requests"):
        r = c.post(
            "/openai/v1/completions",
            content=b'{"model": "gen", "prompt": "a\\ud800b"}',
            headers={**HEADERS, "content-type": "application/json"},
        )
    assert r.status_code == 400
    (line,) = lines(caplog)
    assert line["status"] == 400 and "\\ud800" in line["prompt"]
    line["prompt"].encode("utf-8")  # writable


@pytest.mark.parametrize("env", ["TRITON_LLM_LOG_REQUESTS", "TRITON_LLM_LOG_PROMPTS"])
def test_the_environment_turns_it_on(monkeypatch, env):
    monkeypatch.setenv(env, "1")
    c = TestClient(create_app(Settings(), client=FakeTriton()))
    assert any(m.cls is RequestLog for m in c.app.user_middleware)


def test_an_error_inside_a_stream_is_on_its_line(caplog):
    script = [SCRIPT[0], TritonError("the engine died", "UNAVAILABLE")]
    triton = FakeTriton(script=lambda m, v: list(script))
    c = TestClient(create_app(Settings(log_requests=True), client=triton))
    with caplog.at_level(logging.INFO, logger="openai_frontend.requests"):
        r = chat(c, headers={}, stream=True)
    assert r.status_code == 200 and '"error"' in r.text
    (line,) = lines(caplog)
    assert line["status"] == 200 and line["stream_error"] == 503 and line["completion_tokens"] == 2
