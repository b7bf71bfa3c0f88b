"""Aliases (model.json's `served_model_name`): advertised by the Triton side as optional
inputs, read by the frontend, listed, routed, echoed in `model`; a name has one owner.
And TritonClient's reading of the index: aliases, and the states of models an operator loads."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import drop_colliding_names, find_model
from openai_frontend.repository_control import RepositoryControl
from openai_frontend.settings import Settings
from openai_frontend.triton_client import TritonClient
from tests.unit.fakes.model_server import FakeTriton, Response, embedding_model, generation_model
from triton_llm.errors import SettingError
from triton_llm.served_names import advertised_inputs
from triton_llm.settings import ModelSettings, parse_settings

OK = Response(["x"], ["stop"], [1], 3)


def aliased() -> tuple[TestClient, FakeTriton, list[str]]:
    called: list[str] = []
    gen = dataclasses.replace(generation_model("gen"), aliases=("chat-a", "chat-b"), adapters=("sql",))
    emb = dataclasses.replace(embedding_model("emb"), aliases=("emb", "all-minilm"))

    def script(model, values):
        called.append(model)
        return [OK]

    triton = FakeTriton(models_=[gen, emb], script=script)
    return TestClient(create_app(Settings(), client=triton)), triton, called


def test_each_name_is_listed_and_adapters_name_the_first():
    client, _, _ = aliased()
    data = client.get("/openai/v1/models").json()["data"]
    assert [(m["id"], m.get("parent")) for m in data] == [
        ("chat-a", None), ("chat-b", None), ("sql", "chat-a"), ("emb", None), ("all-minilm", None),
    ]  # fmt: skip
    assert client.get("/openai/v1/models/chat-b").json()["id"] == "chat-b"
    assert client.get("/openai/v1/models/gen").json()["id"] == "gen"  # the Triton name still routes


def test_a_request_naming_an_alias_reaches_the_model_and_is_answered_under_that_name():
    client, triton, called = aliased()
    for name in ("chat-b", "gen"):
        r = client.post("/openai/v1/completions", json={"model": name, "prompt": "Hi"})
        assert r.status_code == 200 and r.json()["model"] == name
        chat = {"model": name, "messages": [{"role": "user", "content": "x"}]}
        r = client.post("/openai/v1/chat/completions", json=chat)
        assert r.status_code == 200 and r.json()["model"] == name
    assert called == ["gen"] * 4
    r = client.post("/openai/v1/embeddings", json={"model": "all-minilm", "input": ["a b"]})
    assert r.status_code == 200 and r.json()["model"] == "all-minilm"
    assert client.post("/openai/v1/embeddings", json={"model": "nope", "input": ["a"]}).status_code == 404


def test_a_name_has_one_owner_model_names_first_then_aliases_then_adapters(caplog):
    models = {
        "gen": dataclasses.replace(generation_model("gen"), aliases=("emb", "shared", "gen"), adapters=("own", "x")),
        "gen2": dataclasses.replace(generation_model("gen2"), aliases=("shared", "x"), adapters=("own",)),
        "emb": embedding_model("emb"),
    }
    with caplog.at_level(logging.ERROR):
        drop_colliding_names(models)
    assert models["gen"].aliases == ("shared", "gen") and models["gen2"].aliases == ("x",)
    assert models["gen"].adapters == ("own",) and models["gen2"].adapters == ()
    assert "served_model_name 'emb' of model 'gen' is not served: the name is taken by the model 'emb'" in caplog.text
    assert "taken by an alias of 'gen'" in caplog.text and "taken by an alias of 'gen2'" in caplog.text
    assert find_model(models, "shared").name == "gen" and find_model(models, "x").name == "gen2"


def test_the_names_are_advertised_as_optional_inputs(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"model": "m", "served_model_name": ["a", "b", "a"]}))
    assert advertised_inputs(str(tmp_path)) == [
        {"name": f"served_model_name:{n}", "data_type": "TYPE_BOOL", "dims": [1], "optional": True} for n in "ab"
    ]
    (tmp_path / "model.json").write_text(json.dumps({"model": "m", "served_model_name": "one"}))
    assert [i["name"] for i in advertised_inputs(str(tmp_path))] == ["served_model_name:one"]
    assert advertised_inputs(str(tmp_path / "missing")) == []


def test_the_setting_takes_a_name_or_a_list_and_refuses_others():
    for good in ("a", ["a", "org/b"]):
        assert parse_settings(ModelSettings, {"model": "m", "served_model_name": good}).served_model_name == good
    for bad in ([], [""], [" a"], ["a\nb"], 3, ["x" * 257]):
        try:
            parse_settings(ModelSettings, {"model": "m", "served_model_name": bad})
        except SettingError as exc:
            assert "served_model_name" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


class _Grpc:
    """Triton's gRPC client as TritonClient uses it: an index, configs, model control."""

    def __init__(self, index: list[dict], configs: dict[str, dict]):
        self.index, self.configs, self.calls = index, configs, []

    async def get_model_repository_index(self, as_json: bool = False) -> dict:
        return {"models": self.index}

    async def get_model_config(self, name: str, as_json: bool = False) -> dict:
        return {"config": self.configs[name]}

    async def load_model(self, name: str) -> None:
        self.calls.append(("load", name))
        self._set(name, "READY")

    async def unload_model(self, name: str) -> None:
        self.calls.append(("unload", name))
        self._set(name, "UNAVAILABLE")

    def _set(self, name: str, state: str) -> None:
        next(e for e in self.index if e["name"] == name)["state"] = state


def test_triton_client_reads_aliases_and_the_operators_states():
    emb_config = {
        "max_batch_size": 4, "output": [{"name": "embedding"}],
        "input": [{"name": "text_input"}, {"name": "served_model_name:minilm"}, {"name": "served_model_name:mini"}],
    }  # fmt: skip
    grpc = _Grpc(
        [{"name": "emb", "state": "READY"}, {"name": "new"}, {"name": "gone", "state": "UNAVAILABLE"}],
        {"emb": emb_config, "new": emb_config},
    )

    async def run() -> None:
        client = TritonClient("127.0.0.1:1")
        await client._client.close()
        client._client, client._control = grpc, RepositoryControl(grpc, client._index)
        models = await client.models()
        assert models["emb"].aliases == ("minilm", "mini") and models["emb"].ready
        assert models["new"].offline and not models["gone"].offline  # never loaded; stopped by itself
        await client.load_model("new")
        models = await client.models()  # read afresh after a load
        assert models["new"].ready and models["new"].aliases == ()  # emb's names stay emb's
        await client.unload_model("emb")
        assert (await client.models())["emb"].offline
        assert grpc.calls == [("load", "new"), ("unload", "emb")]

    asyncio.run(run())


def test_a_load_that_ends_while_the_index_is_read_is_still_changing_not_unready():
    """The index said LOADING, then the load ended before the entry was judged (CI saw one
    readiness 503 from this during an operator's load)."""
    grpc = _Grpc([{"name": "new", "state": "LOADING"}], {})

    async def run() -> None:
        client = TritonClient("127.0.0.1:1")
        await client._client.close()
        client._client, client._control = grpc, RepositoryControl(grpc, client._index)
        client._control.loading.add("new")
        answer = grpc.get_model_repository_index

        async def then_the_load_ends(as_json: bool = False) -> dict:
            index = await answer(as_json)
            client._control.loading.discard("new")
            return index

        grpc.get_model_repository_index = then_the_load_ends
        new = (await client.models())["new"]
        assert new.changing and not new.ready and not new.offline

    asyncio.run(run())
