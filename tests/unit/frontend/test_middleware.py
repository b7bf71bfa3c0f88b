"""What the frontend does before FastAPI parses a request, and around every answer: the body
size limit (a 413 in OpenAI's shape, from the declared length or while a body streams in),
`x-request-id` on every response and the same id given to Triton, the drain's count of requests
in flight and its 503, odd `Authorization` headers (a 401, never a 500); and the OpenAPI document
describing the real request bodies (what a fuzzer and a client generator read)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.middleware import DRAIN_RETRY_AFTER_S, Drain, DrainGate
from openai_frontend.schemas.limits import MAX_LOGPROBS, MAX_N, MAX_PROMPTS, MAX_STOP
from openai_frontend.settings import Settings
from tests.unit.fakes.model_server import FakeTriton, Response, embedding_model, generation_model

OK = Response(["x"], ["stop"], [1], 3)
LIMIT = 2000


def app_with(**fake) -> tuple[TestClient, FakeTriton]:
    triton = FakeTriton(script=lambda m, v: [OK], **fake)
    app = create_app(Settings(max_body_bytes=LIMIT), client=triton)
    return TestClient(app, raise_server_exceptions=False), triton


def small() -> dict:
    return {"model": "gen", "prompt": "Hi"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_a_413_and_the_next_request_is_served(chunked):
    client, triton = app_with()
    raw = json.dumps({"model": "gen", "prompt": "x" * LIMIT}).encode()
    content = (raw[i : i + 500] for i in range(0, len(raw), 500)) if chunked else raw
    r = client.post("/openai/v1/completions", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"] == {
        "message": f"The request body is over this server's limit of {LIMIT} bytes",
        "type": "invalid_request_error",
        "param": None,
        "code": "request_too_large",
    }
    assert r.headers["x-request-id"] and triton.requests == []  # never parsed, never sent
    assert client.post("/openai/v1/completions", json=small()).status_code == 200
    assert 'route="unmatched",status="413"' in client.get("/metrics").text


def test_a_body_at_the_limit_is_read():
    client, _ = app_with()
    raw = json.dumps(small()).encode()
    raw = raw[:-1] + b" " * (LIMIT - len(raw)) + b"}"
    assert len(raw) == LIMIT
    assert client.post("/openai/v1/completions", content=raw, headers={"content-type": "application/json"}).is_success


def test_the_limit_is_a_flag():
    from openai_frontend.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert Settings().max_body_bytes == 32 * 1024 * 1024


@pytest.mark.parametrize(
    ("given", "echoed"),
    [
        ("abc-123", True),
        ("req_01HZX:9f/+=.@~", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("é", False),
        ("", False),
    ],
)
def test_x_request_id_is_the_clients_when_sane_and_goes_to_triton(given, echoed):
    client, triton = app_with()
    r = client.post("/openai/v1/completions", json=small(), headers={"x-request-id": given.encode("utf-8")})
    rid = r.headers["x-request-id"]
    assert (rid == given) is echoed and len(rid) <= 128 and rid.isascii()
    assert triton.request_ids == [rid]


def test_every_answer_has_an_id_errors_and_streams_included():
    client, triton = app_with()
    ids = [
        client.get("/health").headers["x-request-id"],
        client.get("/openai/v1/models/nope").headers["x-request-id"],
        client.post("/openai/v1/completions", content=b"{").headers["x-request-id"],
        client.post("/openai/v1/completions", json={**small(), "stream": True}).headers["x-request-id"],
        client.post("/openai/v1/chat/completions", json={"model": "gen", "messages": []}).headers["x-request-id"],
    ]
    assert len(set(ids)) == len(ids) and all(ids)


def test_a_500_carries_the_id_too():
    def broken(model, values):
        raise RuntimeError("boom")

    client, _ = app_with()
    client.app.state.triton.script = broken
    r = client.post("/openai/v1/completions", json=small(), headers={"x-request-id": "trace-me"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "trace-me"
    assert r.json()["error"]["message"] == "internal server error"


def test_each_triton_request_of_a_call_is_named_after_its_id():
    client, triton = app_with(models_=[generation_model("gen"), embedding_model("emb", max_batch_size=2)])
    headers = {"x-request-id": "r1"}
    client.post("/openai/v1/completions", json={"model": "gen", "prompt": ["a", "b", "c"]}, headers=headers)
    client.post("/openai/v1/chat/completions", json={"model": "gen", "messages": [{"role": "user", "content": "a"}]},
                headers={"x-request-id": "r2"})  # fmt: skip
    client.post(
        "/openai/v1/embeddings", json={"model": "emb", "input": ["a", "b", "c"]}, headers={"x-request-id": "r3"}
    )
    client.post("/openai/v1/embeddings", json={"model": "emb", "input": "a"}, headers={"x-request-id": "r4"})
    assert triton.request_ids == ["r1-0", "r1-1", "r1-2", "r2", "r3-0", "r3-1", "r4"]


def _body_schema(doc: dict, path: str) -> dict:
    ref = doc["paths"][f"/openai/v1/{path}"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_the_openapi_document_describes_every_request_field_and_its_limits():
    from openai_frontend.schemas.chat import ChatCompletionRequest
    from openai_frontend.schemas.completions import CompletionRequest
    from openai_frontend.schemas.embeddings import EmbeddingRequest

    client, _ = app_with()
    doc = client.get("/openapi.json").json()
    for path, model in [
        ("completions", CompletionRequest),
        ("chat/completions", ChatCompletionRequest),
        ("embeddings", EmbeddingRequest),
    ]:
        schema = _body_schema(doc, path)
        names = {f.alias or name for name, f in model.model_fields.items()}
        assert set(schema["properties"]) == names, path  # every field, nothing else
        assert schema["additionalProperties"] is False  # a misspelt field is an error
    completions = _body_schema(doc, "completions")["properties"]
    assert completions["n"]["maximum"] == MAX_N and completions["logprobs"]["anyOf"][0]["maximum"] == MAX_LOGPROBS
    assert {"type": "array", "items": {"type": "string"}, "maxItems": MAX_STOP} in completions["stop"]["anyOf"]
    assert completions["max_tokens"]["anyOf"][0]["minimum"] == 1
    assert str(MAX_PROMPTS) in json.dumps(completions["prompt"])
    chat = _body_schema(doc, "chat/completions")["properties"]
    assert chat["top_logprobs"]["anyOf"][0]["maximum"] == MAX_LOGPROBS and chat["messages"]["minItems"] == 1
    assert chat["temperature"]["anyOf"][0] == {"type": "number", "maximum": 2.0, "minimum": 0.0}
    texts = _body_schema(doc, "embeddings")["properties"]["input"]["anyOf"]  # text only: token ids are refused
    assert texts == [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 2048},
    ]


# -- the drain's gate ---------------------------------------------------------------------


def through_gate(drain: Drain, path: str) -> tuple[list[int], list[dict]]:
    """Run a request for `path` through DrainGate around a 3-chunk stream: the in-flight count
    the app saw at its start and before each chunk, and the messages sent."""
    seen, sent = [], []

    async def stream(scope, receive, send):
        seen.append(drain.inflight)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            seen.append(drain.inflight)
            await send({"type": "http.response.body", "body": b"x", "more_body": i < 2})

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(DrainGate(stream, drain)({"type": "http", "path": path, "headers": []}, receive, send))
    return seen, sent


def test_a_stream_counts_as_in_flight_until_its_last_byte_and_the_probes_not_at_all():
    drain = Drain()
    seen, sent = through_gate(drain, "/openai/v1/completions")
    assert seen == [1, 1, 1, 1] and drain.inflight == 0 and len(sent) == 4
    for path in ("/health", "/health/live", "/health/ready", "/metrics"):
        assert through_gate(drain, path)[0] == [0, 0, 0, 0], path


def test_while_draining_a_new_request_is_a_503_and_the_probes_pass():
    drain = Drain()
    drain.start()
    seen, sent = through_gate(drain, "/openai/v1/chat/completions")
    assert seen == [] and drain.inflight == 0  # never reached the app
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 503 and headers[b"retry-after"] == str(DRAIN_RETRY_AFTER_S).encode()
    assert headers[b"connection"] == b"close" and int(headers[b"content-length"]) == len(body["body"])
    error = json.loads(body["body"])["error"]
    assert error["type"] == "service_unavailable" and error["code"] == "server_shutting_down"
    assert through_gate(drain, "/health/live")[1][0]["status"] == 200


def test_the_drain_begins_once():
    drain = Drain()
    assert not drain.draining and drain.elapsed() == 0
    drain.start()
    since = drain.since
    drain.start()
    assert drain.draining and drain.since == since and drain.elapsed() >= 0


# -- Authorization headers: a 401, never a 500 --------------------------------------------


def keyed(key: str = "sekrit") -> TestClient:
    triton = FakeTriton(script=lambda m, v: [OK])
    return TestClient(create_app(Settings(api_key=key), client=triton), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": b"Bearer \xff\xfe"},
        {"authorization": "Bearer ключ".encode()},
        {"authorization": b"\xff"},
        {"authorization": "Bearer"},
        {"authorization": "Basic c2Vrcml0"},
        {"authorization": "Bearer " + "k" * 60_000},
        [("authorization", "Bearer sekrit"), ("authorization", "Bearer sekrit")],
        [("authorization", "Bearer wrong"), ("authorization", "Bearer sekrit")],
    ],
    ids=["none", "bytes-ff", "cyrillic-utf8", "no-scheme", "no-token", "basic", "huge", "twice", "wrong-then-right"],
)
def test_an_odd_authorization_header_is_a_401(headers):
    r = keyed().post("/openai/v1/completions", json=small(), headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_the_right_key_passes_ascii_or_not():
    assert keyed().post("/openai/v1/completions", json=small(), headers={"authorization": "Bearer sekrit"}).is_success
    r = keyed("ключ").get("/openai/v1/models", headers={"authorization": "bearer  ключ ".encode()})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        ({"content-type": "text/plain"}, json.dumps(small()).encode()),
        ({"content-type": "application/json; charset=latin-1"}, json.dumps(small()).encode()),
        ({"content-type": b"\xff/\xfe"}, json.dumps(small()).encode()),
        ({"content-type": "multipart/form-data; boundary=x"}, b"--x\r\n\r\n--x--"),
        ({"content-encoding": "gzip", "content-type": "application/json"}, b"\x1f\x8b not gzip"),
    ],
    ids=["text-plain", "latin-1", "bytes", "multipart", "gzip"],
)
def test_odd_content_headers_are_never_a_500(headers, content):
    client, _ = app_with()
    r = client.post("/openai/v1/completions", content=content, headers=headers)
    assert r.status_code < 500, r.text
