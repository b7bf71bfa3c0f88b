"""triton_llm.cli.make_repo: KServe's arguments in, a repository entry out; bad combinations refused before writing.

Real model folders (the demo's SmolLM2 and MiniLM, a tiny T5); the hub is a local stand-in
speaking its HTTP API (tests/hub_standin.py), driven by the real huggingface_hub client.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub_standin import HubStandIn
from tests.servers import ROOT
from triton_llm.cli import make_repo


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = make_repo.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def directives(config_pbtxt: Path) -> list[str]:
    """config.pbtxt without comments and blank lines."""
    lines = (line.split("#")[0].strip() for line in config_pbtxt.read_text().splitlines())
    return [line for line in lines if line]


def test_generation_entry_from_a_folder(capsys, tmp_path, model_dir):
    rc, out, err = run(capsys, "--model_dir", model_dir, "--model_name", "smol", "--repository", tmp_path,
                       "--dtype", "float32", "--max_length", 1024, "--max-num-seqs", 8)  # fmt: skip
    assert rc == 0, err
    assert "text_generation on vLLM" in out
    entry = tmp_path / "smol"
    assert json.loads((entry / "1" / "model.json").read_text()) == {
        "model": str(model_dir), "dtype": "float32", "max_model_len": 1024, "max_num_seqs": 8,
    }  # fmt: skip
    # The same Triton configuration and model.py as the demo's hand-written vLLM entry.
    assert directives(entry / "config.pbtxt") == directives(ROOT / "model_repository/smollm2/config.pbtxt")
    assert (entry / "1" / "model.py").read_text() == (ROOT / "model_repository/smollm2/1/model.py").read_text()


def test_embedding_entry_with_kserve_encoder_options(capsys, tmp_path, minilm_dir):
    options = ["--max_length", 128, "--disable_lower_case", "--tensor_input_names", "input_ids,attention_mask"]
    rc, out, err = run(capsys, "--model_dir", minilm_dir, "--model_name", "mini", "--repository", tmp_path, *options)
    assert rc == 0, err
    assert "text_embedding on transformers" in out
    entry = tmp_path / "mini"
    settings = json.loads((entry / "1" / "model.json").read_text())
    assert settings == {"model": str(minilm_dir), "max_length": 128, "disable_lower_case": True,
                        "tensor_input_names": ["input_ids", "attention_mask"]}  # fmt: skip
    assert directives(entry / "config.pbtxt") == directives(ROOT / "model_repository/minilm/config.pbtxt")
    assert (entry / "1" / "model.py").read_text() == (ROOT / "model_repository/minilm/1/model.py").read_text()


def test_max_concurrent_requests_bounds_generation_in_model_json_and_an_encoders_queue_in_config(
    capsys, tmp_path, model_dir, minilm_dir
):
    args = ["--repository", tmp_path, "--max-concurrent-requests", 8]
    assert run(capsys, "--model_dir", model_dir, "--model_name", "smol", *args)[0] == 0
    assert json.loads((tmp_path / "smol" / "1" / "model.json").read_text())["max_concurrent_requests"] == 8
    assert run(capsys, "--model_dir", minilm_dir, "--model_name", "mini", *args)[0] == 0
    assert "max_concurrent_requests" not in (tmp_path / "mini" / "1" / "model.json").read_text()
    assert "dynamic_batching { default_queue_policy { max_queue_size: 8 } }" in directives(
        tmp_path / "mini" / "config.pbtxt"
    )
    # Unset, the queue holds four full /v1/embeddings inputs, cut in pieces of max_batch_size.
    assert run(capsys, "--model_dir", minilm_dir, "--model_name", "mini8", "--repository", tmp_path,
               "--max_batch_size", 8)[0] == 0  # fmt: skip
    assert "dynamic_batching { default_queue_policy { max_queue_size: 1024 } }" in directives(
        tmp_path / "mini8" / "config.pbtxt"
    )


def test_t5_under_auto_is_served_by_transformers(capsys, tmp_path, t5_dir):
    rc, out, err = run(capsys, "--model_dir", t5_dir, "--model_name", "t5", "--repository", tmp_path)
    assert rc == 0, err
    assert "text2text_generation on transformers" in out
    # `auto` stays in model.json (absent = auto): the choice is made again where it is served.
    assert json.loads((tmp_path / "t5" / "1" / "model.json").read_text()) == {"model": str(t5_dir)}


def test_a_model_inside_the_repository_is_named_relative_to_the_entry(capsys, tmp_path, minilm_dir):
    from triton_llm.settings import load_model_json

    weights = tmp_path / "weights" / "mini"
    shutil.copytree(minilm_dir, weights)
    rc, _, err = run(capsys, "--model_dir", weights, "--model_name", "mini", "--repository", tmp_path)
    assert rc == 0, err
    assert json.loads((tmp_path / "mini" / "1" / "model.json").read_text())["model"] == "../../weights/mini"
    assert load_model_json(tmp_path / "mini" / "1")["model"] == str(weights.resolve())


TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>"


def test_vllms_chat_arguments_go_to_model_json_with_the_template_beside_it(capsys, tmp_path, model_dir):
    from triton_llm.settings import VllmSettings, load_model_json, parse_settings

    template = tmp_path / "tools.jinja"
    template.write_text(TEMPLATE)
    kwargs = '{"enable_thinking": false}'
    rc, _, err = run(capsys, "--model_dir", model_dir, "--model_name", "smol", "--repository", tmp_path / "repo",
                     "--tool-call-parser", "hermes", "--enable-auto-tool-choice", "--reasoning-parser", "qwen3",
                     "--tool-strict-level", "function", "--chat-template", template,
                     "--default-chat-template-kwargs", kwargs)  # fmt: skip
    assert rc == 0, err
    version = tmp_path / "repo" / "smol" / "1"
    assert json.loads((version / "model.json").read_text()) == {
        "model": str(model_dir), "tool_call_parser": "hermes", "reasoning_parser": "qwen3",
        "enable_auto_tool_choice": True, "tool_strict_level": "function", "chat_template": "chat_template.jinja",
        "default_chat_template_kwargs": {"enable_thinking": False},
    }  # fmt: skip
    assert (version / "chat_template.jinja").read_text() == TEMPLATE
    # Read back as the model reads it: the template's path next to model.json.
    settings = parse_settings(VllmSettings, load_model_json(version))
    assert settings.chat_template == str((version / "chat_template.jinja").resolve())
    assert settings.enable_auto_tool_choice and settings.default_chat_template_kwargs == {"enable_thinking": False}


@pytest.mark.parametrize(
    ("flag", "written"),
    [("--chat_template", TEMPLATE), ("--chat-template", "template_chatml.jinja")],  # inline; vLLM's built-in
    ids=["inline", "builtin"],
)
def test_a_template_given_inline_or_by_vllms_name_is_written_beside_model_json(capsys, tmp_path, model_dir, flag,
                                                                               written):  # fmt: skip
    args = ["--model_dir", model_dir, "--model_name", "smol", "--repository", tmp_path, "--tool_call_parser", "hermes"]
    rc, _, err = run(capsys, *args, flag, written)
    assert rc == 0, err
    settings = json.loads((tmp_path / "smol" / "1" / "model.json").read_text())
    assert settings["chat_template"] == "chat_template.jinja" and settings["tool_call_parser"] == "hermes"
    text = (tmp_path / "smol" / "1" / "chat_template.jinja").read_text()
    assert (text == TEMPLATE) if written == TEMPLATE else ("<|im_start|>" in text)
    # Replaced without one, the entry keeps no stale template.
    assert run(capsys, *args, "--force")[0] == 0
    assert not (tmp_path / "smol" / "1" / "chat_template.jinja").exists()


BAD = [
    # (model fixture, extra arguments, argument named in the error)
    ("model_dir", ["--task", "text2text_generation"], "--task"),
    ("model_dir", ["--task", "sequence_classification"], "--task"),  # no such head: it would be random
    ("t5_dir", ["--task", "text_generation"], "--task"),
    ("t5_dir", ["--backend", "vllm"], "--backend"),
    ("model_dir", ["--return_probabilities"], "--return_probabilities"),
    ("model_dir", ["--tensor_input_names", "input_ids"], "--tensor_input_names"),
    ("minilm_dir", ["--max-num-seqs", "4"], "--max-num-seqs"),
    ("model_dir", ["--max-num-sqs", "4"], "--max-num-sqs"),
    ("model_dir", ["--backend", "huggingface", "--gpu-memory-utilization", "0.5"], "--gpu-memory-utilization"),
    ("model_dir", ["--max_length", "0"], "--max_length"),
    ("model_dir", ["--max-concurrent-requests", "0"], "--max-concurrent-requests"),
    ("model_dir", ["--model_name", "a/b"], "--model_name"),
    ("model_dir", ["--model_revision", "v1"], "--model_revision"),
    ("model_dir", ["--enable-auto-tool-choice"], "--enable-auto-tool-choice"),  # vLLM's: needs a parser
    ("model_dir", ["--tool-call-parser", "nope"], "--tool-call-parser"),
    ("model_dir", ["--reasoning_parser", "nope"], "--reasoning-parser"),
    ("model_dir", ["--chat-template", "absent.jinja"], "--chat-template"),
    ("model_dir", ["--default-chat-template-kwargs", "{"], "--default-chat-template-kwargs"),
    ("model_dir", ["--default-chat-template-kwargs", "[1]"], "--default-chat-template-kwargs"),
    ("minilm_dir", ["--reasoning-parser", "qwen3"], "--reasoning-parser"),
]


@pytest.mark.parametrize("model, extra, argument", BAD, ids=[" ".join(b[1]) for b in BAD])
def test_invalid_combinations_fail_naming_the_argument_and_write_nothing(
    capsys, request, tmp_path, model, extra, argument
):
    folder = request.getfixturevalue(model)
    rc, _, err = run(capsys, "--model_dir", folder, "--repository", tmp_path / "repo", *extra)
    assert rc == 2
    assert err.startswith(f"make_repo: error: {argument}: "), err
    assert not (tmp_path / "repo").exists()


def test_missing_or_unusable_sources_are_refused(capsys, tmp_path, model_dir):
    rc, _, err = run(capsys, "--repository", tmp_path)
    assert (rc, err.split(":")[2].strip()) == (2, "--model_id")
    rc, _, err = run(capsys, "--model_dir", tmp_path / "absent", "--repository", tmp_path)
    assert rc == 2 and "--model_dir: " in err and "is not a folder" in err
    rc, _, err = run(capsys, "--model_dir", tmp_path, "--repository", tmp_path / "repo")
    assert rc == 2 and "has no config.json" in err


def test_unknown_dtype_is_refused_by_name(capsys, model_dir, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        make_repo.main(["--model_dir", str(model_dir), "--repository", str(tmp_path), "--dtype", "fp8"])
    assert exit_.value.code == 2
    assert "--dtype: invalid choice: 'fp8'" in capsys.readouterr().err


def test_an_existing_entry_is_replaced_only_with_force(capsys, tmp_path, minilm_dir):
    args = ["--model_dir", minilm_dir, "--model_name", "mini", "--repository", tmp_path]
    assert run(capsys, *args)[0] == 0
    rc, _, err = run(capsys, *args, "--max_length", 64)
    assert rc == 2 and "--model_name: " in err and "--force" in err
    assert run(capsys, *args, "--max_length", 64, "--force")[0] == 0
    assert json.loads((tmp_path / "mini" / "1" / "model.json").read_text())["max_length"] == 64


# -- downloads ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_model(minilm_dir, tmp_path_factory) -> Path:
    """MiniLM as a hub repo would hold it: safetensors beside pickled and ONNX copies."""
    folder = tmp_path_factory.mktemp("hub") / "mini"
    shutil.copytree(minilm_dir, folder)
    (folder / "pytorch_model.bin").write_bytes(b"pickled weights: skipped when safetensors exist")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"never loaded")
    return folder


def make_repo_against(
    hub: HubStandIn, home: Path, *argv: str, token: str | None = "hf_test"
) -> subprocess.CompletedProcess:
    # huggingface_hub reads HF_ENDPOINT and HF_HOME at import: a process of its own.
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "triton_llm.cli.make_repo", *map(str, argv)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_hub_download_is_pinned_to_its_commit_and_loads_offline(hub_model, tmp_path):
    with HubStandIn({"org/mini": hub_model}, token="hf_test") as hub:
        proc = make_repo_against(hub, tmp_path / "home", "--model_id", "hf://org/mini", "--model_name", "mini",
                                 "--repository", tmp_path / "repo")  # fmt: skip
        commit = hub.commit("org/mini")
    assert proc.returncode == 0, proc.stderr
    assert f"at commit {commit}" in proc.stdout
    assert "Fetching" in proc.stderr  # huggingface_hub's progress bar
    settings = json.loads((tmp_path / "repo" / "mini" / "1" / "model.json").read_text())
    assert settings == {"model": "org/mini", "revision": commit}
    snapshot = tmp_path / "home" / "hub" / "models--org--mini" / "snapshots" / commit
    assert (snapshot / "model.safetensors").is_file()
    assert not (snapshot / "pytorch_model.bin").exists() and not (snapshot / "onnx").exists()
    # What the entry names is served from the cache with the hub out of reach.
    load = (
        "import json, sys; from triton_llm.encoders.engine import Encoder, EncodeRequest;"
        "from triton_llm.settings import EncoderSettings, parse_settings;"
        "e = Encoder(parse_settings(EncoderSettings, json.loads(sys.argv[1]))); e.load();"
        "print(e.encode([EncodeRequest.parse(['hello'], {})])[0]['embedding'].shape)"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", load, json.dumps(settings)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("(1, 384)")


@pytest.mark.slow
def test_download_dir_inside_the_repository(hub_model, tmp_path):
    repo = tmp_path / "repo"
    with HubStandIn({"org/mini": hub_model}) as hub:
        proc = make_repo_against(hub, tmp_path / "home", "--model_id", "org/mini", "--model_name", "mini",
                                 "--repository", repo, "--download_dir", repo / "weights" / "mini")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((repo / "mini" / "1" / "model.json").read_text()) == {"model": "../../weights/mini"}
    assert (repo / "weights" / "mini" / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, token, argument",
    [
        (["--model_id", "org/mini"], None, "--model_id"),  # gated: HF_TOKEN is needed
        (["--model_id", "org/absent"], "hf_test", "--model_id"),
        (["--model_id", "org/mini", "--model_revision", "v9"], "hf_test", "--model_revision"),
    ],
    ids=["no token", "unknown repo", "unknown revision"],
)
def test_hub_errors_name_the_argument(hub_model, tmp_path, argv, token, argument):
    with HubStandIn({"org/mini": hub_model}, token="hf_test") as hub:
        proc = make_repo_against(hub, tmp_path / "home", *argv, "--repository", tmp_path / "repo", token=token)
    assert proc.returncode == 2
    assert f"make_repo: error: {argument}: " in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "repo").exists()
