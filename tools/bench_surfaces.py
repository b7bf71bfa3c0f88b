"""The surfaces tools/bench.py drives: for each `--endpoint`, which backend and dataset of
`vllm.benchmarks.serve`, which path on each server (ours is under /openai), and which model.

    completions  openai            /v1/completions        random text, model_repository/smollm2
    chat         openai-chat       /v1/chat/completions   random text, one user message each
    responses    openai-responses  /v1/responses          random text as `input`, streamed, store false
    images       openai-chat       /v1/chat/completions   random-mm: one 32x32 JPEG and random text each,
                                                          on the tiny Idefics3 of tests/tiny_vlm.py

No vision-language model ships in model_repository/: `images` builds the tests' tiny Idefics3
(random weights, SmolLM2's tokenizer) into .cache/bench/ on first use, and writes a repository
entry for it with make-repo; vLLM's server gets that entry's engine arguments, as for smollm2.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
IMAGE_SIDE = 32  # the tiny model's tile (tests/tiny_vlm.IMAGE_SIZE): one image is 1 tile + the global one

VLM = "idefics3-tiny"
# The tests' entry (tests/conftest.VLM_FLAGS) with room for the benchmark's 16 concurrent requests:
# a 64 MiB KV cache holds 64 sequences of 1,024 tokens of this 2-layer, 2-KV-head model.
VLM_FLAGS = ["--dtype", "float32", "--max_length", "1024", "--max-num-seqs", "16", "--no-enable-prefix-caching",
             "--limit-mm-per-prompt", '{"image": 1}', "--kv-cache-memory-bytes", str(64 << 20)]  # fmt: skip


@dataclass(frozen=True)
class Surface:
    backend: str  # vllm.benchmarks.serve's --backend
    path: str  # on vLLM's server; ours is "/openai" + path
    lengths: tuple[int, int] = (128, 64)  # default input / output tokens of a full run
    images: bool = False  # random-mm with one image per request, on the tiny VLM


SURFACES = {
    "completions": Surface("openai", "/v1/completions"),
    "chat": Surface("openai-chat", "/v1/chat/completions"),
    "responses": Surface("openai-responses", "/v1/responses"),
    # Short: on 2 cores the image's preprocessing, not the 64-wide model, is most of a request.
    "images": Surface("openai-chat", "/v1/chat/completions", lengths=(64, 32), images=True),
}


def dataset_args(surface: Surface, input_len: int, output_len: int, prefix_len: int = 0) -> list[str]:
    """vllm.benchmarks.serve's dataset flags: random text, and for images exactly one image each. With
    `prefix_len`, every prompt begins with one shared random prefix of that many tokens (then `input_len` more)."""
    text = ["--random-input-len", str(input_len), "--random-output-len", str(output_len)]
    if prefix_len:
        text += ["--random-prefix-len", str(prefix_len)]
    if not surface.images:
        return ["--dataset-name", "random", *text]
    # fmt: off
    return [
        "--dataset-name", "random-mm", *text,
        "--random-mm-base-items-per-request", "1", "--random-mm-num-mm-items-range-ratio", "0",
        "--random-mm-limit-mm-per-prompt", json.dumps({"image": 1, "video": 0}),
        "--random-mm-bucket-config", repr({(IMAGE_SIDE, IMAGE_SIDE, 1): 1.0}),
    ]  # fmt: on


def dataset_name(surface: Surface) -> str:
    """How the report names the load's dataset."""
    return f"random-mm (1 image of {IMAGE_SIDE}x{IMAGE_SIDE} each)" if surface.images else "random"


def serve_argv(
    target: tuple[str, str, str],
    model: str,
    tokenizer: str,
    surface: Surface,
    opts: argparse.Namespace,
    concurrency: int,
    prompts: int,
    warmups: int,
) -> list[str]:
    """The whole command line of one vllm.benchmarks.serve run against (backend, base_url, endpoint)."""
    backend, base_url, endpoint = target
    # fmt: off
    return [
        "--backend", backend, "--base-url", base_url, "--endpoint", endpoint,
        "--model", model, "--tokenizer", tokenizer,
        *dataset_args(surface, opts.input_len, opts.output_len, getattr(opts, "prefix_len", 0)), "--ignore-eos",
        "--num-prompts", str(prompts), "--max-concurrency", str(concurrency), "--seed", str(opts.seed),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
        "--disable-tqdm", "--num-warmups", str(warmups),
    ]  # fmt: on


def repository(surface: Surface, model: str) -> tuple[Path, str]:
    """(model repository, entry) that both servers serve: the demo's, or the tiny VLM's in .cache/bench/."""
    if not surface.images:
        return ROOT / "model_repository", model
    from tests.tiny_vlm import build_tiny_idefics3
    from tools.prepare_model import prepare
    from triton_llm.cli import make_repo

    vlm = build_tiny_idefics3(CACHE / "models" / VLM, prepare(ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct"))
    repo = CACHE / "vlm-repository"
    # --force: rewritten on every run, so that the entry always has these flags.
    argv = ["--model_dir", str(vlm), "--model_name", VLM, "--repository", str(repo), "--force", *VLM_FLAGS]
    if make_repo.main(argv) != 0:
        raise RuntimeError(f"make-repo could not write {repo / VLM}")
    return repo, VLM


def rewritten(
    repository: Path, entries: list[str], dest: Path, settings: dict, counts: dict[str, int] | None = None
) -> Path:
    """A copy of `repository` in `dest` whose `entries` have `settings` added to model.json (every entry's model
    paths made absolute: they are relative to the model.json that names them); an entry in `counts` gets that many
    Triton instances (config.pbtxt's instance_group count: one engine each)."""
    import re
    import shutil

    shutil.copytree(repository, dest, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    for path in sorted(dest.glob("*/1/model.json")):
        entry = path.parent.parent.name
        current = json.loads(path.read_text())
        for key in ("model", "tokenizer"):
            if isinstance(current.get(key), str) and (repository / entry / "1" / current[key]).exists():
                current[key] = str((repository / entry / "1" / current[key]).resolve())
        path.write_text(json.dumps({**current, **(settings if entry in entries else {})}, indent=2))
        if entry in (counts or {}):
            config = dest / entry / "config.pbtxt"
            text, n = re.subn(r"\bcount:\s*\d+", f"count: {counts[entry]}", config.read_text())
            if n != 1:
                raise ValueError(f"{config}: expected one instance_group count, found {n}")
            config.write_text(text)
    return dest
