"""The runtime LoRA routes (vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter) and the resolver's
routing, on the fake Triton: the admin key, which model an adapter goes to, vLLM's answers and errors."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.settings import Settings
from tests.unit.fakes.model_server import FakeTriton, Response, embedding_model, generation_model, model_error

ADMIN = {"Authorization": "Bearer admin-key"}
LOAD = "/openai/v1/load_lora_adapter"
UNLOAD = "/openai/v1/unload_lora_adapter"


def lora_model(name: str, adapters: tuple[str, ...] = (), resolver: bool = False):
    return dataclasses.replace(generation_model(name), lora_control=True, lora_resolver=resolver, adapters=adapters)


def app(*models, controller=None, script=None) -> tuple[TestClient, FakeTriton]:
    triton = FakeTriton(models_=list(models) or [lora_model("base"), embedding_model("emb")], controller=controller,
                        script=script or (lambda model, values: [Response(["hi"], ["stop"], [1], 2)]))  # fmt: skip
    return TestClient(create_app(Settings(admin_key="admin-key"), client=triton)), triton


def loaded(model, command):
    return {"message": f"Success: LoRA adapter '{command['lora_name']}' added successfully.", "adapters": []}


def test_the_routes_need_the_admin_key_and_are_a_404_without_one():
    client, triton = app(controller=loaded)
    body = {"lora_name": "sql", "lora_path": "/adapters/sql"}
    assert client.post(LOAD, json=body).status_code == 401
    assert client.post(LOAD, json=body, headers={"Authorization": "Bearer other"}).status_code == 401
    closed = TestClient(create_app(client=triton))
    assert closed.post(LOAD, json=body, headers=ADMIN).status_code == 404
    assert triton.controls == []


def test_load_goes_to_the_only_model_that_takes_adapters_and_answers_as_vllm():
    client, triton = app(controller=loaded)
    r = client.post(LOAD, json={"lora_name": "sql", "lora_path": "/adapters/sql"}, headers=ADMIN)
    assert r.status_code == 200 and r.text == "Success: LoRA adapter 'sql' added successfully."
    assert triton.controls == [("base", {"action": "load", "lora_name": "sql", "lora_path": "/adapters/sql"})]


def test_which_model_with_several_or_none_a_400_naming_model():
    client, triton = app(lora_model("a"), lora_model("b"), generation_model("plain"), controller=loaded)
    body = {"lora_name": "sql", "lora_path": "/p"}
    r = client.post(LOAD, json=body, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model" and "2 do: a, b" in r.text
    assert client.post(LOAD, json={**body, "model": "b"}, headers=ADMIN).status_code == 200
    r = client.post(LOAD, json={**body, "model": "plain"}, headers=ADMIN)
    assert r.status_code == 400 and "allow_runtime_lora_updating" in r.text and r.json()["error"]["param"] == "model"
    r = client.post(LOAD, json={**body, "model": "nope"}, headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    client, _ = app(generation_model("plain"))
    r = client.post(LOAD, json=body, headers=ADMIN)
    assert r.status_code == 400 and "none does" in r.text
    assert triton.controls == [("b", {"action": "load", "lora_name": "sql", "lora_path": "/p"})]


def test_a_name_taken_or_unknown_and_the_models_refusals_name_the_field():
    refusal = model_error("lora_path", "/etc is not inside a folder")
    client, triton = app(lora_model("base", adapters=("sql",)), embedding_model("emb"), controller=lambda m, c: refusal)
    for name, words in (("sql", "has already been loaded"), ("emb", "conflicts with a served base model")):
        r = client.post(LOAD, json={"lora_name": name, "lora_path": "/p"}, headers=ADMIN)
        assert r.status_code == 400 and words in r.text and r.json()["error"]["param"] == "lora_name"
    r = client.post(LOAD, json={"lora_name": "new", "lora_path": "/etc"}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["param"] == "lora_path" and "not inside" in r.text
    r = client.post(UNLOAD, json={"lora_name": "nope"}, headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"]["message"] == "The lora adapter 'nope' cannot be found."
    for body, param in (({"lora_name": "a"}, "lora_path"), ({"lora_name": "a", "lora_path": "/p", "load_inplace": True},
                        "load_inplace"), ({"lora_name": "", "lora_path": "/p"}, "lora_name")):  # fmt: skip
        r = client.post(LOAD, json=body, headers=ADMIN)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert [c[1]["lora_name"] for c in triton.controls] == ["new"]


def test_unload_finds_the_model_that_serves_the_adapter():
    removed = {"message": "Success: LoRA adapter 'sql' removed successfully.", "adapters": []}
    client, triton = app(lora_model("a"), lora_model("b", adapters=("sql",)), controller=lambda m, c: removed)
    r = client.post(UNLOAD, json={"lora_name": "sql", "lora_int_id": 3}, headers=ADMIN)
    assert r.status_code == 200 and r.text == removed["message"]
    assert triton.controls == [("b", {"action": "unload", "lora_name": "sql"})]
    assert client.post(UNLOAD, json={"lora_name": "sql", "model": "a"}, headers=ADMIN).status_code == 404


def test_an_unknown_model_is_tried_on_the_resolver_models_before_a_404():
    seen = []

    def resolves(model, command):
        found = command["lora_name"] == "tenant-7"
        return {"message": "resolved" if found else "not found", "adapters": ["tenant-7"] if found else []}

    def script(model, values):
        seen.append((model, values["sampling_parameters"].get("lora_name")))
        return [Response(["hi"], ["stop"], [1], 2)]

    client, triton = app(lora_model("base", resolver=True), generation_model("plain"), controller=resolves,
                         script=script)  # fmt: skip
    r = client.post("/openai/v1/completions", json={"model": "tenant-7", "prompt": "x", "max_tokens": 2})
    assert r.status_code == 200 and r.json()["model"] == "tenant-7" and seen == [("base", "tenant-7")]
    r = client.post("/openai/v1/completions", json={"model": "nobody", "prompt": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert [c for _, c in triton.controls] == [{"action": "resolve", "lora_name": n} for n in ("tenant-7", "nobody")]


def test_a_resolver_that_finds_a_bad_adapter_is_a_400_naming_model():
    client, _ = app(lora_model("base", resolver=True),
                    controller=lambda m, c: model_error("lora_name", "the adapter's rank 64 is above 8"))  # fmt: skip
    r = client.post("/openai/v1/completions", json={"model": "bad", "prompt": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model" and "rank 64" in r.text


@pytest.mark.parametrize("route", [LOAD, UNLOAD])
def test_the_routes_take_json_objects_only(route):
    client, _ = app(controller=loaded)
    assert client.post(route, content=b"[1]", headers={**ADMIN, "content-type": "application/json"}).status_code == 400
