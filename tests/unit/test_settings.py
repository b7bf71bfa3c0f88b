"""model.json as typed settings: paths resolved, bad values refused by key, vLLM's arguments, the reference doc."""

import json
import logging

import pytest

from triton_llm import hf_loading, settings_reference
from triton_llm.errors import SettingError
from triton_llm.generation.engines.vllm.args import engine_args
from triton_llm.settings import (
    EncoderSettings,
    HfGenerationSettings,
    ModelSettings,
    VllmSettings,
    load_model_json,
    parse_settings,
)
from triton_llm.tasks import Task


def write(tmp_path, settings):
    (tmp_path / "model.json").write_text(json.dumps(settings))
    return tmp_path


def test_relative_model_path_resolves_against_model_json(tmp_path):
    (tmp_path / "weights").mkdir()
    settings = load_model_json(write(tmp_path, {"model": "./weights"}))
    assert settings["model"] == str((tmp_path / "weights").resolve())


def test_hub_ids_pass_through(tmp_path):
    hub_id = "HuggingFaceTB/SmolLM2-135M"
    assert load_model_json(write(tmp_path, {"model": hub_id}))["model"] == hub_id
    assert engine_args(parse_settings(VllmSettings, {"model": "hf://org/name"}))["model"] == "org/name"


def test_missing_or_bad_model_json_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_model_json(tmp_path)
    (tmp_path / "model.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model_json(tmp_path)


BAD = [
    (HfGenerationSettings, {"max_num_seqs": "many"}, "max_num_seqs", "valid integer, got 'many'"),
    (HfGenerationSettings, {"max_num_seqs": 0}, "max_num_seqs", "greater than 0"),
    (ModelSettings, {"trust_remote_code": "yes"}, "trust_remote_code", "valid boolean, got 'yes'"),
    (ModelSettings, {"backend": "tgi"}, "backend", "backend must be one of 'auto', 'vllm' or 'huggingface'"),
    (ModelSettings, {"task": "summarize"}, "task", "task must be one of 'text_generation', "),
    (ModelSettings, {"dtype": "bf16"}, "dtype", "dtype must be one of 'auto', "),
    (EncoderSettings, {"matryoshka_dimensions": [64, "x"]}, "matryoshka_dimensions", "valid integer"),
    (VllmSettings, {"max_num_sqs": 4}, "max_num_sqs", "not a vLLM engine argument"),
    (VllmSettings, {"max_concurrent_requests": 0}, "max_concurrent_requests", "greater than 0"),
    (HfGenerationSettings, {"max_concurrent_requests": "8"}, "max_concurrent_requests", "valid integer"),
]


@pytest.mark.parametrize("cls, raw, key, problem", BAD, ids=[b[2] + "=" + repr(b[1][b[2]]) for b in BAD])
def test_a_bad_value_fails_at_load_naming_its_key(cls, raw, key, problem):
    with pytest.raises(SettingError, match=problem) as error:
        parse_settings(cls, {"model": "m", **raw})
    assert error.value.key == key
    assert str(error.value).startswith(f"model.json: {key}")


def test_model_is_required():
    with pytest.raises(SettingError, match="model is required"):
        parse_settings(ModelSettings, {})


def test_values_as_json_gives_them():
    s = parse_settings(EncoderSettings, {"model": "m", "task": "fill_mask", "tensor_input_names": "input_ids,mask"})
    assert s.task is Task.FILL_MASK and s.task == "fill_mask"
    assert s.tensor_input_names == ["input_ids", "mask"]
    assert (s.max_batch_tokens, s.dtype, s.backend, s.trust_remote_code) == (16384, "auto", "auto", False)


def test_keys_a_family_does_not_read_are_logged_once(caplog):
    raw = {"model": "m", "max_num_seqs": 8, "gpu_memory_utilization": 0.5}
    with caplog.at_level(logging.WARNING, logger="triton_llm.settings"):
        parse_settings(ModelSettings, raw)  # the common part: says nothing
        parse_settings(HfGenerationSettings, raw)
    assert [r.getMessage() for r in caplog.records] == [
        "model.json: keys without effect for the transformers generation engine: ['gpu_memory_utilization']"
    ]


def test_vllm_args_drop_our_keys_and_add_cpu_defaults_unless_given(monkeypatch):
    monkeypatch.setattr(hf_loading, "has_gpu", lambda: False)
    raw = {"model": "m", "backend": "vllm", "task": "text_generation", "enforce_eager": False}
    args = engine_args(parse_settings(VllmSettings, {**raw, "max_concurrent_requests": 8}))
    assert args["enforce_eager"] is False and "backend" not in args and "task" not in args
    assert "max_concurrent_requests" not in args  # the runner's bound, not vLLM's
    assert args["dtype"] == hf_loading.cpu_dtype()


def test_an_exact_kv_cache_size_is_not_overridden_by_the_cpu_variable(monkeypatch):
    import os

    monkeypatch.setattr(hf_loading, "has_gpu", lambda: False)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    args = engine_args(parse_settings(VllmSettings, {"model": "m", "kv_cache_memory_bytes": 64 << 20}))
    assert args["kv_cache_memory_bytes"] == 64 << 20 and "VLLM_CPU_KVCACHE_SPACE" not in os.environ


def test_gpu_keeps_vllm_defaults(monkeypatch):
    monkeypatch.setattr(hf_loading, "has_gpu", lambda: True)
    assert engine_args(parse_settings(VllmSettings, {"model": "m"})) == {"model": "m"}
    explicit = {"model": "m", "dtype": "auto", "max_num_seqs": 8}
    assert engine_args(parse_settings(VllmSettings, explicit)) == explicit


def test_docs_settings_md_is_rendered_from_the_classes():
    # After changing a setting: python -m triton_llm.settings_reference
    assert settings_reference.DOC.read_text() == settings_reference.render()
