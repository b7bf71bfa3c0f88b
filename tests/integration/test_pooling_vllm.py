"""Our /classify and /pooling against vLLM's own server (`python -m vllm.entrypoints.openai.api_server`)
on the same models and texts (tiny BERTs, a sequence and a token classifier; MiniLM's embeddings):
the same labels, class counts, usage and id prefixes, the same shapes, and values to 1e-4
(probabilities, raw logits, per-token rows, embeddings, base64 too).

vLLM's CPU attention takes no head smaller than 32, so these BERTs are built here with hidden
size 64 and 2 heads (the session's have 8). A Triton with the three models and our frontend, and
one vLLM server per model (vLLM serves one), the first starting beside ours: 149 s on a busy
2-core EPYC (64 s for the two BERTs alone), so the test is `bench` (make bench-test, which CI
runs), not make test. Nothing differed from vLLM 0.32 beyond the ids' prefix and usage's
completion_tokens_details, now vLLM's.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.servers import frontend_up, make_repository, start_triton
from tools.bench import vllm_server_command
from triton_llm.cli.serve import free_port, stop_group, wait_ready

pytestmark = [pytest.mark.bench, pytest.mark.slow]

TEXTS = ["the man went to the city today", "she said that it was good", "house"]
MODELS = {"bert-seq-cls": "sequence_classification", "bert-token-cls": "token_classification"}
REQUESTS = {  # name: (path, model, body beyond model and input)
    "classify": ("/classify", "bert-seq-cls", {}),
    "classify-logits": ("/classify", "bert-seq-cls", {"use_activation": False}),
    "classify-truncated": ("/classify", "bert-seq-cls", {"truncate_prompt_tokens": 3}),
    "pool-classify": ("/pooling", "bert-seq-cls", {}),
    "pool-classify-task": ("/pooling", "bert-seq-cls", {"task": "classify", "encoding_format": "base64"}),
    "pool-tokens": ("/pooling", "bert-token-cls", {}),
    "pool-tokens-logits": ("/pooling", "bert-token-cls", {"use_activation": False}),
    "pool-embed": ("/pooling", "minilm", {}),
    "pool-embed-base64": ("/pooling", "minilm", {"task": "embed", "encoding_format": "base64"}),
}  # fmt: skip


@pytest.fixture(scope="module")
def berts(model_dir, tmp_path_factory):
    from transformers import AutoTokenizer

    from tests.tiny_models import build_tiny_bert

    source = AutoTokenizer.from_pretrained(model_dir)
    root = tmp_path_factory.mktemp("bert-head32")
    return {name: build_tiny_bert(root / task, source, task, hidden_size=64, heads=2) for name, task in MODELS.items()}


@contextmanager
def vllm_started(name: str, path: Path, log: Path) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    """vLLM's server for one model, started and not waited for (its start is mostly imports)."""
    port = free_port()
    args = {"model": str(path), "served_model_name": name, "dtype": "float32", "enforce_eager": True}
    with open(log, "wb") as out:
        proc = subprocess.Popen(vllm_server_command(args, port), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            yield proc, f"http://127.0.0.1:{port}", log
        finally:
            stop_group(proc, grace=40)


def ask_when_ready(server: tuple[subprocess.Popen, str, Path], model: str) -> dict[str, dict]:
    proc, url, log = server
    assert wait_ready(proc, f"{url}/health", 600), f"vLLM's server for {model} did not start: see {log}"
    return ask(url, model)


def ask(base: str, model: str | None = None) -> dict[str, dict]:
    out = {}
    for name, (path, served, extra) in REQUESTS.items():
        if model in (None, served):
            r = requests.post(f"{base}{path}", json={"model": served, "input": TEXTS, **extra}, timeout=120)
            assert r.status_code == 200, (name, r.text)
            out[name] = r.json()
    return out


def rows(answer: dict) -> list[np.ndarray]:
    """Each input's values: a classification's probs, a pooling's data (decoded when base64)."""
    out = []
    for d in answer["data"]:
        value = d["probs"] if "probs" in d else d["data"]
        if isinstance(value, str):
            value = np.frombuffer(base64.b64decode(value), dtype="<f4")
        out.append(np.asarray(value, dtype=np.float64))
    return out


def test_classify_and_pooling_equal_vllms_server(berts, minilm_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # not 92% of the memory
    models = {**berts, "minilm": minilm_dir}
    entries = {name: {"like": "minilm", "model": str(path), "dtype": "float32"} for name, path in models.items()}
    (first, first_path), *rest = models.items()
    # The first vLLM server starts while our stack starts and answers, the others after it.
    with vllm_started(first, first_path, tmp_path / f"{first}.log") as server:
        triton = start_triton(make_repository(tmp_path / "repo", entries), tmp_path / "tritonserver.log")
        try:
            with frontend_up(triton.grpc_url, tmp_path / "frontend.log") as ours:
                got = ask(f"{ours.url}/openai")
        finally:
            triton.stop()
        want = ask_when_ready(server, first)
    for name, path in rest:
        with vllm_started(name, path, tmp_path / f"{name}.log") as server:
            want |= ask_when_ready(server, name)
    for name in REQUESTS:
        ours, theirs = got[name], want[name]
        assert ours["object"] == theirs["object"] == "list" and ours["usage"] == theirs["usage"], name
        assert ours["id"].split("-")[0] == theirs["id"].split("-")[0], name  # classify-..., pooling-...
        for key in ("index", "label", "num_classes", "object"):
            assert [d.get(key) for d in ours["data"]] == [d.get(key) for d in theirs["data"]], (name, key)
        a, b = rows(ours), rows(theirs)
        assert [x.shape for x in a] == [y.shape for y in b], name
        worst = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
        print(f"{name}: shapes {[x.shape for x in a]}, max |ours - vLLM| {worst:.1e}")
        assert worst <= 1e-4, name
