"""The factory above engines/ and chat/: model.json parsed once into its family's settings, the engine
that family names in the chat layer, and the layering it keeps (engines import neither chat nor the
runner; chat/ and engines/hf/ take vLLM only from vllm_library)."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

from tests.unit.fakes.engine import FakeEngine
from tests.unit.fakes.harness import fake_settings, install, model_args
from triton_llm.generation import factory
from triton_llm.generation.chat import ChatEngine
from triton_llm.generation.engines.hf.engine import HuggingFaceEngine
from triton_llm.settings import EncoderSettings, HfGenerationSettings, Typed, VllmSettings, parse_model_json
from triton_llm.tasks import GENERATION_TASKS, Task

GENERATION = Path(factory.__file__).parent


def _config(architectures: list[str], **kwargs) -> types.SimpleNamespace:
    return types.SimpleNamespace(architectures=architectures, is_encoder_decoder=False, **kwargs)


def test_model_json_is_parsed_into_the_family_its_task_and_backend_name():
    seen = []
    raw = {"model": "m", "backend": "huggingface", "max_num_seqs": 8, "max_concurrent_requests": 3}
    typed = parse_model_json(raw, lambda common: seen.append(common) or _config(["LlamaForCausalLM"]))
    assert (type(typed.settings), typed.task, typed.backend) == (
        HfGenerationSettings,
        Task.TEXT_GENERATION,
        "huggingface",
    )
    assert (typed.settings.max_num_seqs, typed.settings.max_concurrent_requests) == (8, 3)
    assert len(seen) == 1 and seen[0].model == "m"  # the model's config is read once, from the common keys


def test_an_encoder_task_is_parsed_as_encoder_settings():
    config = _config(["BertForSequenceClassification"], num_labels=1)
    typed = parse_model_json({"model": "m", "max_batch_tokens": 512}, lambda _: config)
    assert (type(typed.settings), typed.task) == (EncoderSettings, Task.CROSS_ENCODER)
    assert typed.settings.max_batch_tokens == 512


def test_the_engine_is_the_backends_in_the_chat_layer():
    settings = HfGenerationSettings(model="m")
    engine = factory.create_engine(Typed(settings, Task.TEXT_GENERATION, "huggingface"))
    assert isinstance(engine, ChatEngine) and isinstance(engine.engine, HuggingFaceEngine)
    assert engine.settings is settings


def test_the_runner_reads_model_json_once_and_hands_the_same_settings_on(monkeypatch, tmp_path):
    runner = install(monkeypatch, tmp_path, "triton_llm.generation.runner")
    (tmp_path / "model.json").write_text('{"model": "fake-model", "max_concurrent_requests": 7}')
    reads, given = [], []
    monkeypatch.setattr(runner, "read_settings", lambda d: reads.append(fake_settings(d)) or reads[-1])
    monkeypatch.setattr(runner, "create_engine", lambda typed, args: given.append(typed) or FakeEngine())
    model = runner.TritonPythonModel()
    model.initialize(model_args())
    try:
        assert len(reads) == 1 and given == reads
        assert model.admission.limit == 7
    finally:
        model.finalize()


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def _package_imports(folder: Path) -> dict[str, set[str]]:
    return {str(p.relative_to(GENERATION)): _imports(p) for p in folder.rglob("*.py")}


@pytest.mark.parametrize(
    "folder, forbidden",
    [
        ("engines", ("triton_llm.generation.chat", "triton_llm.generation.factory", "triton_llm.generation.runner")),
        ("chat", ("triton_llm.generation.engines.vllm", "triton_llm.generation.factory")),
        ("engines/hf", ("triton_llm.generation.engines.vllm",)),
    ],
)
def test_imports_run_one_way(folder, forbidden):
    wrong = {
        path: sorted(m for m in modules if m.startswith(forbidden))
        for path, modules in _package_imports(GENERATION / folder).items()
    }
    assert {path: mods for path, mods in wrong.items() if mods} == {}


def test_settings_families_cover_every_generation_backend():
    from triton_llm.settings import family_of

    assert {family_of(task, b) for task in GENERATION_TASKS for b in ("vllm", "huggingface")} == {
        VllmSettings,
        HfGenerationSettings,
    }
