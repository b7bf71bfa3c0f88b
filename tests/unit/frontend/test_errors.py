"""The error contract between the models and the frontend, without a server: a model's
structured error becomes OpenAI's shape naming the endpoint's own parameter; Triton's plain
messages map by their status."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import InvalidField, from_triton
from openai_frontend.serving.fields import openai_param
from tests.unit.fakes.model_server import FakeTriton, Response, TritonError, embedding_model, model_error
from triton_llm.errors import InvalidInput

OK = Response(["x"], ["stop"], [1], 3)


def app_with(**fake) -> tuple[TestClient, FakeTriton]:
    triton = FakeTriton(**fake)
    return TestClient(create_app(client=triton)), triton


def test_the_models_wire_form_decodes_to_the_field_and_problem():
    wire = InvalidInput("sampling_parameters.max_tokens", 'must be at least 1, got -1 "é"').to_wire()
    assert json.loads(wire) == {"message": 'must be at least 1, got -1 "é"', "param": "sampling_parameters.max_tokens"}
    error = from_triton(wire)  # a stream error carries no status: the JSON shape says 400
    assert isinstance(error, InvalidField) and error.status == 400
    assert (error.field, error.problem) == ("sampling_parameters.max_tokens", 'must be at least 1, got -1 "é"')


@pytest.mark.parametrize(
    ("message", "status", "http", "param"),
    [
        ("unknown model 'x'", "", 404, "model"),
        ("Request for unknown model: 'x' is not found", "StatusCode.NOT_FOUND", 404, "model"),
        ("failed to connect to all addresses", "StatusCode.UNAVAILABLE", 503, None),
        ("unexpected inference input 'foo'", "StatusCode.INVALID_ARGUMENT", 400, None),
        ("generation failed: out of memory", "", 500, None),
        ("{not json", "", 500, None),
        ('{"no": "message"}', "", 500, None),
        ('{"message": "refused"}', "", 400, None),  # a model error not about one field
    ],
)
def test_tritons_plain_messages_map_by_status(message, status, http, param):
    error = from_triton(message, status)
    assert (error.status, error.param) == (http, param)


@pytest.mark.parametrize(
    ("endpoint", "field", "offset", "param"),
    [
        (Endpoint.COMPLETIONS, "text_input", 0, "prompt"),
        (Endpoint.CHAT, "text_input", 0, "messages"),
        (Endpoint.CHAT, "messages", 0, "messages"),
        (Endpoint.CHAT, "messages[0].role", 0, "messages[0].role"),
        (Endpoint.COMPLETIONS, "sampling_parameters.max_tokens", 0, "max_tokens"),
        (Endpoint.CHAT, "sampling_parameters.max_tokens", 0, "max_tokens"),
        (Endpoint.CHAT, "sampling_parameters.structured_outputs", 0, "response_format"),
        (Endpoint.COMPLETIONS, "sampling_parameters", 0, "sampling_parameters"),
        (Endpoint.EMBEDDINGS, "text_input[3]", 64, "input[67]"),
        (Endpoint.EMBEDDINGS, "text_input", 64, "input"),
        (Endpoint.EMBEDDINGS, "dimensions", 0, "dimensions"),
        (Endpoint.EMBEDDINGS, "truncate_prompt_tokens", 0, "truncate_prompt_tokens"),
        (Endpoint.COMPLETIONS, "an_input_added_tomorrow", 0, "an_input_added_tomorrow"),  # no whitelist
        (Endpoint.DETOKENIZE, "input_ids", 0, "tokens"),
    ],
)
def test_model_fields_map_to_openai_params(endpoint, field, offset, param):
    assert openai_param(endpoint, field, offset) == param


@pytest.mark.parametrize(
    ("field", "offset", "param"),
    [
        ("text_input[1]", 0, "documents[1]"),
        ("text_pair[1]", 2, "documents[3]"),
        ("text_input", 0, "text_input"),  # not one row: the model's name, as any unknown input
        ("text_input[1].x", 0, "text_input[1].x"),
        ("truncate_prompt_tokens", 0, "truncate_prompt_tokens"),
    ],
)
def test_scoring_rows_are_named_by_the_request(field, offset, param):
    assert openai_param(Endpoint.SCORE, field, offset, rows=lambda row: f"documents[{row}]") == param


@pytest.mark.parametrize(
    ("path", "body", "field", "param"),
    [
        ("completions", {"prompt": "x"}, "text_input", "prompt"),
        ("completions", {"prompt": "x"}, "sampling_parameters.max_tokens", "max_tokens"),
        ("chat/completions", {"messages": [{"role": "user", "content": "x"}]}, "text_input", "messages"),
        ("chat/completions", {"messages": [{"role": "user", "content": "x"}]}, "messages", "messages"),
        ("completions", {"prompt": "x", "stream": True}, "new_input", "new_input"),
    ],
)
def test_a_model_error_is_a_400_naming_the_openai_param(path, body, field, param):
    client, _ = app_with(script=lambda model, values: [model_error(field, "is too long")])
    r = client.post(f"/openai/v1/{path}", json={"model": "gen", **body})
    # Streamed too: the refusal is the model's first response, so it is the status (sse.py).
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error == {"message": f"{param}: is too long", "type": "invalid_request_error", "param": param, "code": None}


def test_embeddings_name_the_text_by_its_place_in_the_whole_request():
    def embedder(model, texts, parameters):
        if "bad" in texts:
            return model_error(f"text_input[{texts.index('bad')}]", "300 tokens, over this model's limit")
        return None

    client, triton = app_with(models_=[embedding_model("emb", max_batch_size=2)], embedder=embedder)
    r = client.post("/openai/v1/embeddings", json={"model": "emb", "input": ["a", "b", "c", "bad", "e"]})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "input[3]"
    assert r.json()["error"]["message"] == "input[3]: 300 tokens, over this model's limit"
    assert [len(q["texts"]) for q in triton.requests] == [2, 2, 1]  # pieces of max_batch_size


def test_embedding_parameter_errors_keep_their_name():
    client, _ = app_with(embedder=lambda m, t, p: model_error("dimensions", "no matryoshka"))
    r = client.post("/openai/v1/embeddings", json={"model": "emb", "input": "a", "dimensions": 3})
    assert r.status_code == 400 and r.json()["error"]["param"] == "dimensions"


@pytest.mark.parametrize(
    ("error", "status", "type_"),
    [
        (TritonError("unexpected inference input 'x'", "StatusCode.INVALID_ARGUMENT"), 400, "invalid_request_error"),
        (TritonError("Request for unknown model", "StatusCode.NOT_FOUND"), 404, "not_found_error"),
        (TritonError("failed to connect", "StatusCode.UNAVAILABLE"), 503, "service_unavailable"),
        (TritonError("generation failed: boom"), 500, "server_error"),
    ],
)
def test_plain_triton_errors_over_http(error, status, type_):
    client, _ = app_with(script=lambda model, values: [error])
    r = client.post("/openai/v1/completions", json={"model": "gen", "prompt": "x"})
    assert r.status_code == status and r.json()["error"]["type"] == type_
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_models_that_do_not_exist_are_not_ready_or_serve_another_endpoint():
    client, triton = app_with()
    r = client.post("/openai/v1/completions", json={"model": "nope", "prompt": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = client.post("/openai/v1/completions", json={"model": "emb", "prompt": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    triton.models_[0].ready = False
    assert client.post("/openai/v1/completions", json={"model": "gen", "prompt": "x"}).status_code == 503
    assert client.get("/health").status_code == 503
    assert client.get("/openai/v1/models").json()["data"] == [{"id": "emb", "object": "model", "created": 0,
                                                               "owned_by": "triton"}]  # fmt: skip


def test_health_is_ok_when_triton_and_every_model_are_ready():
    client, triton = app_with()
    assert client.get("/health").json() == {"status": "ok", "models": ["emb", "gen"]}
    triton.ready = False
    assert client.get("/health").status_code == 503
