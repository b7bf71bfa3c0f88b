"""hf_loading: the dtype policy, the device from Triton's instance, and what from_pretrained is given."""

import pytest

from triton_llm import hf_loading
from triton_llm.settings import ModelSettings


def test_cpu_dtype_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(hf_loading, "cpu_flags", lambda: frozenset({"avx2"}))
    assert hf_loading.cpu_dtype() == "float32"
    monkeypatch.setattr(hf_loading, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert hf_loading.cpu_dtype() == "bfloat16"


def test_auto_dtype_is_the_cpus_fast_one_on_a_cpu_and_the_models_on_a_gpu(monkeypatch):
    monkeypatch.setattr(hf_loading, "cpu_dtype", lambda: "bfloat16")
    auto, fp32 = ModelSettings(model="m"), ModelSettings(model="m", dtype="float32")
    assert hf_loading.torch_dtype(auto, "cpu") == "bfloat16"
    assert hf_loading.torch_dtype(auto, "cuda:1") == "auto"
    assert hf_loading.torch_dtype(fp32, "cpu") == hf_loading.torch_dtype(fp32, "cuda:0") == "float32"
    monkeypatch.setattr(hf_loading, "has_gpu", lambda: False)
    assert hf_loading.torch_dtype(auto) == "bfloat16"  # no device: this machine's


@pytest.mark.parametrize(
    "args, expected",
    [
        ({"model_instance_kind": "GPU", "model_instance_device_id": "1"}, "cuda:1"),
        ({"model_instance_kind": "MODEL", "model_instance_device_id": "0"}, "cuda:0"),
        ({"model_instance_kind": "CPU", "model_instance_device_id": "0"}, "cpu"),
        (None, "cuda:0"),
    ],
)
def test_device_comes_from_tritons_instance(monkeypatch, args, expected):
    monkeypatch.setattr(hf_loading, "has_gpu", lambda: True)
    assert hf_loading.device(args) == expected


def test_no_gpu_means_cpu_whatever_the_instance_kind(monkeypatch):
    monkeypatch.setattr(hf_loading, "has_gpu", lambda: False)
    assert hf_loading.device({"model_instance_kind": "GPU", "model_instance_device_id": "1"}) == "cpu"


class FakeModel:
    """Records what load_model does with it."""

    calls: list = []

    @classmethod
    def from_pretrained(cls, name, **kwargs):
        cls.calls.append(("from_pretrained", name, kwargs))
        return cls()

    def eval(self):
        self.calls.append(("eval",))
        return self

    def to(self, device):
        self.calls.append(("to", device))
        return self


@pytest.mark.parametrize("device", ["cpu", "cuda:1"])
def test_load_model_passes_the_settings_and_places_the_model(monkeypatch, device):
    monkeypatch.setattr(hf_loading, "cpu_dtype", lambda: "bfloat16")
    FakeModel.calls = []
    s = ModelSettings(model="hf://org/m", revision="abc", trust_remote_code=True)
    hf_loading.load_model(FakeModel, s, device, attn_implementation="eager")
    dtype = "bfloat16" if device == "cpu" else "auto"
    kwargs = {"revision": "abc", "dtype": dtype, "trust_remote_code": True, "attn_implementation": "eager"}
    assert FakeModel.calls[:2] == [("from_pretrained", "org/m", kwargs), ("eval",)]
    assert FakeModel.calls[2:] == ([] if device == "cpu" else [("to", device)])


def test_the_tokenizer_falls_back_to_the_models_id_and_revision(monkeypatch):
    import transformers

    seen = []
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda name, **kw: seen.append((name, kw)))
    hf_loading.load_tokenizer(ModelSettings(model="hf://org/m", revision="r1"), do_lower_case=False)
    hf_loading.load_tokenizer(ModelSettings(model="org/m", tokenizer="hf://org/t", tokenizer_revision="r2"))
    assert seen == [
        ("org/m", {"revision": "r1", "trust_remote_code": False, "do_lower_case": False}),
        ("org/t", {"revision": "r2", "trust_remote_code": False}),
    ]


def test_model_files_reads_a_local_folder(tmp_path):
    (tmp_path / "modules.json").write_text("[]")
    read = hf_loading.model_files(ModelSettings(model=str(tmp_path)))
    assert read("modules.json") == tmp_path / "modules.json"
    assert read("absent.json") is None
