"""The benchmark tool's smoke mode produces its JSON, table and plot (no timing asserted).

Each run starts its own stacks (vLLM's server, ours, Triton alone, the transformers engine): about
five minutes in all, so these run in `make bench-test` (which CI runs), not in `make test`."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.servers import ROOT
from tools.bench import FIGURES

pytestmark = [pytest.mark.bench, pytest.mark.slow]


def test_quick_bench_writes_json_markdown_and_png(tmp_path, model_dir):
    out = tmp_path / "bench"
    cmd = [
        sys.executable,
        "-m",
        "tools.bench",
        "--quick",
        "--concurrency",
        "1",
        "2",
        "--num-prompts",
        "2",
        "--systems",
        "vllm",
        "ours",
        "triton",
        "hf",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]

    report = json.loads((out / "bench.json").read_text())
    for system in ("vllm", "ours", "triton", "hf"):
        for level in ("1", "2"):
            figures = report["results"][system][level]
            assert set(FIGURES) | {"completed", "errors"} <= set(figures)
            assert figures["errors"] == 0 and figures["completed"] == 2
    table = (out / "bench.md").read_text()
    assert "| 2 | output tok/s |" in table and "ours/vLLM" in table and "hf/vLLM" in table
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_embeddings_bench_writes_json_markdown_and_png(tmp_path, minilm_dir):
    out = tmp_path / "bench-embeddings"
    cmd = [sys.executable, "-m", "tools.bench_embeddings", "--quick", "--num-sentences", "12",
           "--concurrency", "1", "4", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    report = json.loads((out / "bench.json").read_text())
    for system in ("on", "off"):
        for level in ("1", "4"):
            figures = report["results"][system][level]
            assert figures["completed"] == 12 and figures["errors"] == 0
            assert {"embeddings_per_s", "latency_p50_ms", "latency_p99_ms"} <= set(figures)
    assert "| 4 | embeddings/s |" in (out / "bench.md").read_text()
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_chat_bench_drives_both_servers_chat_endpoints(tmp_path, model_dir):
    out = tmp_path / "bench-chat"
    cmd = [sys.executable, "-m", "tools.bench", "--quick", "--endpoint", "chat", "--concurrency", "2",
           "--num-prompts", "2", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    report = json.loads((out / "bench.json").read_text())
    assert report["load"]["endpoint"] == "chat" and set(report["results"]) == {"vllm", "ours"}
    for system in ("vllm", "ours"):
        assert report["results"][system]["2"]["completed"] == 2
    table = (out / "bench.md").read_text()
    assert "Load: chat," in table
    # Where ours spent its TTFT, from each hop's own metrics: the hops add up to the client's mean.
    hops = report["results"]["ours"]["2"]["hops"]
    assert all(math.isfinite(v) and v > -1 for v in hops.values()), hops
    assert sum(v for k, v in hops.items() if k != "total") == pytest.approx(hops["total"], rel=1e-6)
    assert "Where the TTFT of ours goes" in table


def test_chat_is_refused_for_the_systems_that_speak_tritons_protocol():
    from tools.bench import main

    with pytest.raises(SystemExit) as exc:
        main(["--endpoint", "chat", "--systems", "vllm", "triton"])
    assert exc.value.code == 2
