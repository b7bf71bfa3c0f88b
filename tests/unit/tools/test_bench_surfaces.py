"""tools/bench_surfaces and tools/bench's CLI: which backend, path, dataset flags and systems each
`--endpoint` gets. Pure: no server, no vLLM import (its load generator is what reads these flags;
`python -m tools.bench --endpoint X --quick` is the run that proves it takes them)."""

from __future__ import annotations

import ast
import json
from argparse import Namespace

import pytest

from tools import bench, bench_surfaces
from tools.bench_surfaces import SURFACES, dataset_args, serve_argv


def flags(argv: list[str]) -> dict[str, str]:
    """--name value pairs (a flag with no value maps to "")."""
    out, i = {}, 0
    while i < len(argv):
        has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        out[argv[i]] = argv[i + 1] if has_value else ""
        i += 2 if has_value else 1
    return out


@pytest.mark.parametrize(
    "endpoint, backend, path",
    [
        ("completions", "openai", "/v1/completions"),
        ("chat", "openai-chat", "/v1/chat/completions"),
        ("responses", "openai-responses", "/v1/responses"),
        # random-mm runs only on vLLM's chat backend: images go as image_url parts of a user message
        ("images", "openai-chat", "/v1/chat/completions"),
    ],
)
def test_each_endpoint_drives_its_backend_and_path(endpoint, backend, path):
    assert (SURFACES[endpoint].backend, SURFACES[endpoint].path) == (backend, path)
    assert bench.ENDPOINTS is SURFACES  # the CLI's --endpoint choices are these


@pytest.mark.parametrize("endpoint", ["completions", "chat", "responses"])
def test_text_surfaces_use_the_random_dataset(endpoint):
    got = flags(dataset_args(SURFACES[endpoint], 32, 8))
    assert got == {"--dataset-name": "random", "--random-input-len": "32", "--random-output-len": "8"}


def test_images_send_exactly_one_32x32_image_per_request():
    got = flags(dataset_args(SURFACES["images"], 16, 4))
    assert got["--dataset-name"] == "random-mm"
    assert (got["--random-input-len"], got["--random-output-len"]) == ("16", "4")
    assert got["--random-mm-base-items-per-request"] == "1"
    assert float(got["--random-mm-num-mm-items-range-ratio"]) == 0  # always 1, never 0 or 2
    assert json.loads(got["--random-mm-limit-mm-per-prompt"]) == {"image": 1, "video": 0}
    # vLLM's parser reads the buckets as a Python literal: (height, width, frames) -> probability
    assert ast.literal_eval(got["--random-mm-bucket-config"]) == {(32, 32, 1): 1.0}
    assert bench_surfaces.dataset_name(SURFACES["images"]) == "random-mm (1 image of 32x32 each)"
    assert '"image": 1' in bench_surfaces.VLM_FLAGS[bench_surfaces.VLM_FLAGS.index("--limit-mm-per-prompt") + 1]


def test_serve_argv_names_the_served_model_and_the_load():
    opts = Namespace(input_len=32, output_len=8, seed=7)
    target = ("openai-responses", "http://127.0.0.1:9", "/openai/v1/responses")
    argv = serve_argv(target, "idefics3-tiny", "/tok", SURFACES["responses"], opts, 4, 8, 2)
    got = flags(argv)
    assert got["--backend"] == "openai-responses"
    assert (got["--base-url"], got["--endpoint"]) == ("http://127.0.0.1:9", "/openai/v1/responses")
    assert (got["--model"], got["--tokenizer"]) == ("idefics3-tiny", "/tok")
    assert (got["--num-prompts"], got["--max-concurrency"], got["--seed"], got["--num-warmups"]) == ("8", "4", "7", "2")
    assert "--ignore-eos" in argv and got["--dataset-name"] == "random"


def test_the_text_surfaces_serve_the_demo_repository():
    repo, entry = bench_surfaces.repository(SURFACES["responses"], "smollm2")
    assert (repo, entry) == (bench_surfaces.ROOT / "model_repository", "smollm2")


@pytest.mark.parametrize("endpoint", ["chat", "responses", "images"])
def test_endpoints_without_tritons_protocol_refuse_the_grpc_systems(endpoint):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--endpoint", endpoint, "--systems", "vllm", "triton"])
    assert exc.value.code == 2


def test_vllm_server_gets_a_dict_argument_as_json():
    cmd = bench.vllm_server_command({"limit_mm_per_prompt": {"image": 1}, "enable_prefix_caching": False}, 8000)
    assert cmd[cmd.index("--limit-mm-per-prompt") + 1] == '{"image": 1}'
    assert "--no-enable-prefix-caching" in cmd


def test_a_shared_prefix_is_vllms_random_prefix_len_and_absent_by_default():
    assert "--random-prefix-len" not in dataset_args(SURFACES["completions"], 128, 64)
    got = flags(dataset_args(SURFACES["completions"], 128, 64, prefix_len=512))
    assert (got["--random-prefix-len"], got["--random-input-len"], got["--dataset-name"]) == ("512", "128", "random")
    opts = Namespace(input_len=128, output_len=64, seed=0, prefix_len=512)
    argv = serve_argv(
        ("triton-grpc", "http://h:1", "/smollm2-hf"), "smollm2", "/tok", SURFACES["completions"], opts, 16, 64, 4
    )
    assert flags(argv)["--random-prefix-len"] == "512"


def test_without_prefix_caching_turns_it_off_in_a_copy_whose_model_paths_still_resolve(tmp_path):
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "weights").mkdir()
    (repo / "m" / "1" / "model.json").write_text(json.dumps({"model": "../../weights", "max_num_seqs": 4}))
    (repo / "m" / "1" / "chat_template.jinja").write_text("{{ x }}")
    (repo / "other" / "1").mkdir(parents=True)
    (repo / "other" / "1" / "model.json").write_text(json.dumps({"model": "../../weights"}))
    copy = bench_surfaces.rewritten(repo, ["m"], tmp_path / "out" / "repository", {"enable_prefix_caching": False})
    settings = json.loads((copy / "m" / "1" / "model.json").read_text())
    assert settings == {"model": str((repo / "weights").resolve()), "max_num_seqs": 4, "enable_prefix_caching": False}
    assert (copy / "m" / "1" / "chat_template.jinja").read_text() == "{{ x }}"
    # Only the entries named lose it; every entry's relative paths still find their files.
    assert json.loads((copy / "other" / "1" / "model.json").read_text()) == {"model": str((repo / "weights").resolve())}
    assert json.loads((repo / "m" / "1" / "model.json").read_text())["model"] == "../../weights"  # the original stays


def test_instance_count_sets_the_served_entrys_instance_group_count_in_the_copy_only(tmp_path):
    repo = tmp_path / "repo"
    for entry in ("m", "other"):
        (repo / entry / "1").mkdir(parents=True)
        (repo / entry / "1" / "model.json").write_text("{}")
        (repo / entry / "config.pbtxt").write_text(
            'backend: "python"\ninstance_group [{ count: 1, kind: KIND_MODEL }]\n'
        )
    copy = bench_surfaces.rewritten(repo, ["m", "other"], tmp_path / "out", {}, {"m": 2})
    assert "instance_group [{ count: 2, kind: KIND_MODEL }]" in (copy / "m" / "config.pbtxt").read_text()
    assert "count: 1," in (copy / "other" / "config.pbtxt").read_text()
    assert "count: 1," in (repo / "m" / "config.pbtxt").read_text()


def test_bench_takes_instance_count(monkeypatch):
    seen = []

    def stop(opts):
        seen.append(opts)
        raise SystemExit(0)

    monkeypatch.setattr(bench, "bench", stop)
    with pytest.raises(SystemExit):
        bench.main(["--systems", "ours", "--instance-count", "2", "--concurrency", "16", "64"])
    assert seen[0].instance_count == 2 and seen[0].concurrency == [16, 64]


@pytest.mark.parametrize(
    "load, says",
    [
        ({}, "Load: completions, 128 in / 64 out tokens"),
        ({"prefix_len": 512, "prefix_caching": True}, "a shared 512-token prefix (prefix caching on) + 128 in"),
        ({"prefix_len": 512, "prefix_caching": False}, "a shared 512-token prefix (prefix caching off) + 128 in"),
    ],
)
def test_the_report_names_a_shared_prefix_and_whether_the_servers_cached_it(load, says):
    from tools.bench_report import markdown

    report = {
        "machine": {"cpu": "x", "cores": 2, "bf16": True, "date": "d"},
        "load": {"input_len": 128, "output_len": 64, "seed": 0, "prompts": {"16": 64}, **load},
        "engine_args": {},
        "results": {"vllm": {"16": {"output_throughput": 1.0}}, "hf": {"16": {"output_throughput": 2.0}}},
    }
    assert says in markdown(report)
