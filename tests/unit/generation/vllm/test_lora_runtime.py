"""Runtime LoRA in the model, without Triton or vLLM's engine: the `lora_control` input on the wire,
the settings, the adapter checks (allowed folders, adapter files, rank, base model's shapes), load,
unload while requests run on the adapter, and the resolver, on a fake AsyncLLM."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.unit.fakes.wire import inputs
from triton_llm import hf_loading
from triton_llm.errors import InvalidInput, SettingError
from triton_llm.generation.engines.vllm.args import engine_args
from triton_llm.generation.engines.vllm.lora import Adapters, advertised_inputs
from triton_llm.generation.engines.vllm.lora_control import LoraControl
from triton_llm.generation.protocol import build_outputs, parse_request
from triton_llm.generation.types import GenerationChunk
from triton_llm.settings import VllmSettings, parse_settings

HIDDEN = 16


@pytest.fixture(autouse=True)
def cpu(monkeypatch):
    """A CPU, without importing torch to ask (a first import may start a subprocess)."""
    monkeypatch.setattr(hf_loading, "has_gpu", lambda: False)


def weights(path: Path, tensors: dict[str, tuple[int, ...]]) -> None:
    from safetensors.numpy import save_file

    save_file({name: np.zeros(shape, dtype=np.float32) for name, shape in tensors.items()}, str(path))


def adapter(folder: Path, rank: int = 8, width: int = HIDDEN, peft_type: str = "LORA") -> Path:
    """A PEFT adapter of q_proj, `width` wide (the base model's is HIDDEN)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": peft_type, "r": rank}))
    module = "base_model.model.model.layers.0.self_attn.q_proj"
    weights(folder / "adapter_model.safetensors", {f"{module}.lora_A.weight": (rank, width),
                                                   f"{module}.lora_B.weight": (width, rank)})  # fmt: skip
    return folder


class FakeLLM:
    """AsyncLLM's LoRA calls, recorded; `max_lora_rank` as vLLM's lora_config holds it."""

    def __init__(self) -> None:
        self.vllm_config = SimpleNamespace(lora_config=SimpleNamespace(max_lora_rank=8))
        self.loaded: dict[int, str] = {}
        self.errored = False

    async def add_lora(self, request) -> bool:
        self.loaded[request.lora_int_id] = request.lora_name
        return True

    async def remove_lora(self, lora_id: int) -> bool:
        return self.loaded.pop(lora_id, None) is not None


@pytest.fixture
def base(tmp_path) -> Path:
    folder = tmp_path / "base"
    folder.mkdir()
    weights(folder / "model.safetensors", {"model.layers.0.self_attn.q_proj.weight": (HIDDEN, HIDDEN)})
    return folder


def control(tmp_path, base, capacity=None, **settings) -> tuple[LoraControl, FakeLLM]:
    keys = {"allow_runtime_lora_updating": True, "lora_allowed_paths": [str(tmp_path / "allowed")], **settings}
    typed = parse_settings(VllmSettings, {"model": str(base), "enable_lora": True, **keys})
    adapters = Adapters(typed.lora_modules or (), True)
    adapters.requests()
    lora = LoraControl(typed, adapters, True)
    llm = FakeLLM()
    lora.started(llm, str(base), capacity)
    return lora, llm


def run(lora: LoraControl, **command) -> dict:
    return json.loads(asyncio.run(lora.answer(json.dumps(command))))


def refused(lora: LoraControl, **command) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        run(lora, **command)
    return info.value


def test_a_control_request_carries_no_prompt_and_its_answer_is_text_output():
    request = parse_request(inputs(lora_control='{"action": "list"}'))
    assert request.lora_control == '{"action": "list"}' and request.prompt is None
    outputs = build_outputs(request, GenerationChunk('{"adapters": []}', 0, [], True), 0, True)
    assert list(outputs) == ["text_output"] and outputs["text_output"][0] == b'{"adapters": []}'


def test_only_a_model_that_opts_in_declares_the_control_input(tmp_path):
    def declared(settings):
        (tmp_path / "model.json").write_text(json.dumps({"model": "m", "enable_lora": True, **settings}))
        return [i["name"] for i in advertised_inputs(str(tmp_path))]

    assert declared({}) == []
    assert declared({"allow_runtime_lora_updating": True}) == ["lora_control"]
    assert declared({"allow_runtime_lora_updating": True, "lora_resolver": "/a"}) == ["lora_control", "lora_resolver"]


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"lora_allowed_paths": ["/a"]}, "lora_allowed_paths"),
        ({"lora_resolver": "/a"}, "lora_resolver"),
        ({"allow_runtime_lora_updating": True, "lora_allowed_paths": ["rel"]}, "lora_allowed_paths"),
        ({"allow_runtime_lora_updating": True, "lora_resolver": "rel"}, "lora_resolver"),
    ],
)
def test_runtime_lora_settings_need_the_opt_in_and_absolute_folders(settings, key):
    typed = parse_settings(VllmSettings, {"model": "m", "enable_lora": True, **settings})
    with pytest.raises(SettingError) as info:
        LoraControl(typed, Adapters(), True)
    assert info.value.key == key
    opted = parse_settings(VllmSettings, {"model": "m", "allow_runtime_lora_updating": True})
    with pytest.raises(SettingError, match="enable_lora"):
        LoraControl(opted, Adapters(), None)


def test_a_model_that_did_not_opt_in_refuses_control_and_runtime_keys_stay_out_of_vllm():
    typed = parse_settings(VllmSettings, {"model": "m"})
    with pytest.raises(InvalidInput) as info:
        asyncio.run(LoraControl(typed, Adapters(), None).answer('{"action": "list"}'))
    assert info.value.field == "lora_control" and "allow_runtime_lora_updating" in info.value.problem
    opted = parse_settings(VllmSettings, {"model": "m", "enable_lora": True, "allow_runtime_lora_updating": True})
    assert "allow_runtime_lora_updating" not in engine_args(opted)


def test_load_list_and_unload_with_ids_never_reused(tmp_path, base):
    lora, llm = control(tmp_path, base)
    path = adapter(tmp_path / "allowed" / "sql")
    answer = run(lora, action="load", lora_name="sql", lora_path=str(path))
    assert answer == {"message": "Success: LoRA adapter 'sql' added successfully.", "adapters": ["sql"],
                      "resolver": False}  # fmt: skip
    assert llm.loaded == {1: "sql"} and lora.adapters.request("sql").lora_path == str(path)
    assert run(lora, action="list")["adapters"] == ["sql"]
    assert run(lora, action="unload", lora_name="sql")["adapters"] == [] and llm.loaded == {}
    run(lora, action="load", lora_name="sql", lora_path=str(path))
    assert llm.loaded == {2: "sql"}  # a new id: a request still on the old one keeps its own


@pytest.mark.parametrize(
    ("make", "field", "problem"),
    [
        (lambda t: adapter(t / "elsewhere" / "a"), "lora_path", "not inside a folder adapters may be loaded from"),
        (lambda t: t / "allowed" / "missing", "lora_path", "is not a folder"),
        (lambda t: (t / "allowed" / "empty").mkdir(parents=True) or t / "allowed" / "empty", "lora_path",
         "holds no adapter_config.json"),
        (lambda t: adapter(t / "allowed" / "ia3", peft_type="IA3"), "lora_path", "not a LoRA adapter"),
        (lambda t: adapter(t / "allowed" / "big", rank=16), "lora_path", "rank 16 is above this model's max_lora_rank"),
        (lambda t: adapter(t / "allowed" / "other", width=24), "lora_path", "does not fit this base model"),
    ],
)  # fmt: skip
def test_bad_adapters_are_400s_naming_the_problem_and_nothing_is_loaded(tmp_path, base, make, field, problem):
    lora, llm = control(tmp_path, base)
    error = refused(lora, action="load", lora_name="a", lora_path=str(make(tmp_path)))
    assert error.field == field and problem in error.problem, error.problem
    assert llm.loaded == {} and lora.adapters.names == []


def test_a_link_out_of_the_allowed_folder_is_refused(tmp_path, base):
    lora, _ = control(tmp_path, base)
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "link").symlink_to(adapter(tmp_path / "secret"))
    assert "not inside" in refused(lora, action="load", lora_name="a", lora_path=str(tmp_path / "allowed/link")).problem
    dotted = str(tmp_path / "allowed" / ".." / "secret")
    assert "not inside" in refused(lora, action="load", lora_name="a", lora_path=dotted).problem


def test_no_allowed_folder_refuses_every_path(tmp_path, base):
    lora, _ = control(tmp_path, base, lora_allowed_paths=None)
    error = refused(lora, action="load", lora_name="a", lora_path=str(adapter(tmp_path / "a")))
    assert "lora_allowed_paths: none are set" in error.problem


def test_names_actions_and_fields_are_checked(tmp_path, base):
    lora, _ = control(tmp_path, base, lora_modules=[f"static={tmp_path}"])
    assert refused(lora, action="load", lora_name="static", lora_path="/x").problem.endswith(
        "has already been loaded; unload it first."
    )
    assert refused(lora, action="unload", lora_name="nope").problem == "The lora adapter 'nope' cannot be found."
    assert refused(lora, action="load", lora_name="", lora_path="/x").field == "lora_name"
    assert refused(lora, action="load", lora_name="a").field == "lora_path"
    assert refused(lora, action="drop").field == "action"
    with pytest.raises(InvalidInput) as info:
        asyncio.run(lora.answer("[1]"))
    assert info.value.field == "lora_control"
    # A declared adapter may be unloaded too, as in vLLM.
    assert run(lora, action="unload", lora_name="static")["adapters"] == []


def test_unloading_an_adapter_in_use_lets_its_requests_finish(tmp_path, base):
    lora, llm = control(tmp_path, base)

    async def scenario():
        await lora.answer(
            json.dumps({"action": "load", "lora_name": "a", "lora_path": str(adapter(tmp_path / "allowed" / "a"))})
        )
        held = await lora.lookup("a")
        lora.adapters.hold(held)
        await lora.answer('{"action": "unload", "lora_name": "a"}')
        assert llm.loaded == {1: "a"}  # still running on it
        with pytest.raises(InvalidInput, match="unknown LoRA adapter 'a'"):
            await lora.lookup("a")  # a new request cannot name it
        lora.forget(lora.adapters.release(held))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert llm.loaded == {}

    asyncio.run(scenario())


def test_a_cpu_holds_at_most_its_capacity(tmp_path, base):
    lora, _ = control(tmp_path, base, capacity=1)
    run(lora, action="load", lora_name="a", lora_path=str(adapter(tmp_path / "allowed" / "a")))
    error = refused(lora, action="load", lora_name="b", lora_path=str(adapter(tmp_path / "allowed" / "b")))
    assert "limit of 1 adapters" in error.problem and "max_loras" in error.problem
    assert (
        engine_args(
            parse_settings(VllmSettings, {"model": "m", "enable_lora": True, "allow_runtime_lora_updating": True})
        )["max_loras"]
        >= 2
    )


def test_the_resolver_loads_an_unknown_name_from_its_folder_on_first_use(tmp_path, base):
    folder = tmp_path / "resolver"
    adapter(folder / "found")
    (folder / "escape").symlink_to(adapter(tmp_path / "outside"))
    lora, llm = control(tmp_path, base, lora_resolver=str(folder), lora_allowed_paths=None)

    async def scenario():
        found = await lora.lookup("found")
        assert found.lora_name == "found" and llm.loaded == {1: "found"}
        assert await lora.lookup("found") is found  # loaded once
        for name in ("missing", "../outside", "escape"):
            with pytest.raises(InvalidInput):
                await lora.lookup(name)
        answer = json.loads(await lora.answer('{"action": "resolve", "lora_name": "missing"}'))
        assert answer["message"] == "not found" and answer["resolver"] is True
        assert llm.loaded == {1: "found"}

    asyncio.run(scenario())
    # The resolver's folder is one adapters may be loaded from.
    assert run(lora, action="load", lora_name="b", lora_path=str(folder / "found"))["adapters"] == ["found", "b"]


# In a process of its own: huggingface_hub reads HF_ENDPOINT when it is imported.
HF_RESOLVER = """
import asyncio, json
from types import SimpleNamespace
from triton_llm.generation.engines.vllm.lora import Adapters
from triton_llm.generation.engines.vllm.lora_control import LoraControl
from triton_llm.settings import VllmSettings, parse_settings

class LLM:
    vllm_config = SimpleNamespace(lora_config=SimpleNamespace(max_lora_rank=8))
    errored = False
    async def add_lora(self, request):
        return True

keys = {"enable_lora": True, "allow_runtime_lora_updating": True, "lora_resolver": "hf://org/adapters"}
lora = LoraControl(parse_settings(VllmSettings, {"model": "m", **keys}), Adapters(), True)
lora.adapters.requests()
lora.started(LLM(), "m", None)

async def main():
    found = await lora.lookup("tenant")
    answer = json.loads(await lora.answer(json.dumps({"action": "resolve", "lora_name": "nobody"})))
    print("RESULT " + json.dumps({"path": found.lora_path, **answer}))

asyncio.run(main())
"""


@pytest.mark.slow
def test_an_hf_resolver_loads_the_names_folder_of_its_hub_repository(tmp_path):
    from tests.hub_standin import HubStandIn
    from tests.servers import ROOT

    adapter(tmp_path / "repo" / "tenant")
    with HubStandIn({"org/adapters": tmp_path / "repo"}) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_XET": "1"}
        env.pop("HF_TOKEN", None)
        proc = subprocess.run([sys.executable, "-c", HF_RESOLVER], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, proc.stderr[-3000:]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["path"].endswith("/tenant") and "snapshots" in result["path"]
    assert result["adapters"] == ["tenant"] and result["message"] == "not found"
