import json

import pytest

from triton_llm import config


def write(tmp_path, settings):
    (tmp_path / "model.json").write_text(json.dumps(settings))
    return tmp_path


def test_relative_model_path_resolves_against_model_json(tmp_path):
    (tmp_path / "weights").mkdir()
    settings = config.load_model_json(write(tmp_path, {"model": "./weights"}))
    assert settings["model"] == str((tmp_path / "weights").resolve())


def test_hub_ids_pass_through(tmp_path):
    assert (
        config.load_model_json(write(tmp_path, {"model": "HuggingFaceTB/SmolLM2-135M"}))["model"]
        == "HuggingFaceTB/SmolLM2-135M"
    )
    assert config.vllm_engine_args({"model": "hf://org/name"})["model"] == "org/name"


def test_missing_or_bad_model_json_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        config.load_model_json(tmp_path)
    (tmp_path / "model.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        config.load_model_json(tmp_path)


def test_cpu_defaults_respect_explicit_settings(monkeypatch):
    monkeypatch.setattr(config, "has_gpu", lambda: False)
    args = config.vllm_engine_args({"model": "m", "backend": "vllm", "enforce_eager": False})
    assert args["enforce_eager"] is False and "backend" not in args
    assert args["dtype"] == config.cpu_dtype()


def test_cpu_dtype_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(config, "cpu_flags", lambda: frozenset({"avx2"}))
    assert config.cpu_dtype() == "float32"
    monkeypatch.setattr(config, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert config.cpu_dtype() == "bfloat16"


def test_gpu_keeps_vllm_defaults(monkeypatch):
    monkeypatch.setattr(config, "has_gpu", lambda: True)
    assert config.vllm_engine_args({"model": "m"}) == {"model": "m"}
