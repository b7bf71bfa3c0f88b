"""LoRA adapters: model.json's `lora_modules` (and vllm_backend's multi_lora.json), the vLLM engine's
`LoRARequest` per `lora_name`, the config inputs that advertise them, and the frontend's routing."""

import dataclasses
import json
import logging

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.backend import drop_colliding_names, find_model
from tests.unit.fakes.model_server import FakeTriton, Response, embedding_model, generation_model
from triton_llm.errors import InvalidInput, SettingError
from triton_llm.generation.engines.vllm.args import engine_args
from triton_llm.generation.engines.vllm.lora import Adapters, advertised_inputs, keep_a_cpu_slot_empty
from triton_llm.settings import HfGenerationSettings, VllmSettings, load_model_json, parse_settings


def model_json(tmp_path, settings, multi_lora=None):
    (tmp_path / "model.json").write_text(json.dumps({"model": "org/name", **settings}))
    if multi_lora is not None:
        (tmp_path / "multi_lora.json").write_text(json.dumps(multi_lora))
    return load_model_json(tmp_path)


def test_both_forms_of_vllms_lora_modules_with_relative_paths_resolved(tmp_path):
    (tmp_path / "sql").mkdir()
    raw = model_json(tmp_path, {"enable_lora": True, "lora_modules": [{"name": "a", "path": "./sql"}, "b=/abs/b"]})
    settings = parse_settings(VllmSettings, raw)
    assert [(m.name, m.path) for m in settings.lora_modules] == [
        ("a", str((tmp_path / "sql").resolve())),
        ("b", "/abs/b"),
    ]
    # Ours, not an engine argument; vLLM's own LoRA keys pass through.
    assert "lora_modules" not in engine_args(settings) and engine_args(settings)["enable_lora"] is True


def test_vllm_backends_multi_lora_json_is_read_only_with_enable_lora(tmp_path):
    (tmp_path / "doc").mkdir()
    raw = model_json(tmp_path, {"enable_lora": "true", "lora_modules": ["a=/x"]}, multi_lora={"doc": "doc"})
    assert raw["lora_modules"] == [{"name": "a", "path": "/x"}, {"name": "doc", "path": str(tmp_path / "doc")}]
    assert "lora_modules" not in model_json(tmp_path, {}, multi_lora={"doc": "doc"})


@pytest.mark.parametrize(
    ("modules", "problem"),
    [
        ([{"name": "a"}], "lora_modules"),
        (["no-equals-sign"], "lora_modules"),
        ([{"name": "a", "path": "/p", "x": 1}], "lora_modules"),
    ],
)
def test_bad_lora_modules_name_the_key(modules, problem):
    with pytest.raises(SettingError) as info:
        parse_settings(VllmSettings, {"model": "m", "lora_modules": modules})
    assert info.value.key == problem


def test_the_engine_needs_enable_lora_and_distinct_names():
    settings = parse_settings(VllmSettings, {"model": "m", "lora_modules": ["a=/p"]})
    with pytest.raises(SettingError, match="enable_lora") as info:
        Adapters(settings.lora_modules, None)
    assert info.value.key == "lora_modules"
    twice = parse_settings(VllmSettings, {"model": "m", "lora_modules": ["a=/p", "a=/q"]})
    with pytest.raises(SettingError, match="twice"):
        Adapters(twice.lora_modules, True)


def test_a_transformers_model_refuses_lora_modules():
    with pytest.raises(SettingError) as info:
        parse_settings(HfGenerationSettings, {"model": "m", "lora_modules": ["a=/p"]})
    assert info.value.key == "lora_modules" and "vLLM" in info.value.message


def test_each_adapter_keeps_one_int_id_and_unknown_names_are_400s():
    adapters = Adapters(
        parse_settings(VllmSettings, {"model": "m", "lora_modules": ["a=/p", "b=/q"]}).lora_modules, True
    )
    a, b = adapters.request("a"), adapters.request("b")
    assert (a.lora_name, a.lora_int_id, a.lora_path) == ("a", 1, "/p") and b.lora_int_id == 2
    assert adapters.request("a") is a and adapters.request(None) is None
    for bad, problem in (("c", "unknown LoRA adapter 'c'; this model's adapters: a, b"), (3, "must be a string")):
        with pytest.raises(InvalidInput) as info:
            adapters.request(bad)
        assert info.value.field == "sampling_parameters.lora_name" and problem in info.value.problem
    with pytest.raises(InvalidInput, match="none"):
        Adapters().request("a")


def test_adapters_are_advertised_as_optional_inputs(tmp_path):
    model_json(tmp_path, {"enable_lora": True, "lora_modules": ["a=/p"]})
    assert advertised_inputs(str(tmp_path)) == [
        {"name": "lora_module:a", "data_type": "TYPE_BOOL", "dims": [1], "optional": True}
    ]
    assert advertised_inputs(str(tmp_path / "missing")) == []


def test_colliding_adapter_names_are_dropped_with_an_error(caplog):
    models = {
        "gen": dataclasses.replace(generation_model("gen"), adapters=("sql", "emb", "doc")),
        "gen2": dataclasses.replace(generation_model("gen2"), adapters=("sql", "own")),
        "emb": embedding_model("emb"),
    }
    with caplog.at_level(logging.ERROR):
        drop_colliding_names(models)
    assert models["gen"].adapters == ("sql", "doc") and models["gen2"].adapters == ("own",)
    assert "taken by the model 'emb'" in caplog.text and "an adapter of 'gen'" in caplog.text
    assert find_model(models, "own").name == "gen2" and find_model(models, "own").lora_name == "own"
    assert find_model(models, "gen").lora_name is None and find_model(models, "nope") is None


def test_the_frontend_lists_adapters_and_routes_them_to_their_base_model():
    seen = []

    def script(model, values):
        seen.append((model, values["sampling_parameters"]))
        return [Response(["hi"], ["stop"], [1], 2)]

    triton = FakeTriton(models_=[dataclasses.replace(generation_model("gen"), adapters=("sql",))], script=script)
    client = TestClient(create_app(client=triton))
    data = client.get("/openai/v1/models").json()["data"]
    assert [(m["id"], m.get("parent")) for m in data] == [("gen", None), ("sql", "gen")]
    assert client.get("/openai/v1/models/sql").json()["parent"] == "gen"
    r = client.post("/openai/v1/completions", json={"model": "sql", "prompt": "x", "max_tokens": 3})
    assert r.status_code == 200 and r.json()["model"] == "sql"
    r = client.post(
        "/openai/v1/chat/completions", json={"model": "sql", "messages": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 200 and r.json()["model"] == "sql"
    client.post("/openai/v1/completions", json={"model": "gen", "prompt": "x"})
    assert [(m, s.get("lora_name")) for m, s in seen] == [("gen", "sql"), ("gen", "sql"), ("gen", None)]
    r = client.post("/openai/v1/completions", json={"model": "nope", "prompt": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_a_cpu_keeps_one_lora_slot_empty():
    # vLLM 0.32's CPU kernels give a row without an adapter the last slot's weights.
    args = {"max_loras": 1, "max_cpu_loras": 1}
    keep_a_cpu_slot_empty(args, 2)
    assert args == {"max_loras": 3, "max_cpu_loras": 3}
    args = {"max_loras": 8}
    keep_a_cpu_slot_empty(args, 2)
    assert args == {"max_loras": 8}
