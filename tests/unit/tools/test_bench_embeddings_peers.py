"""The pure parts of `tools.bench_embeddings --peers`: the table's ratios, cosine agreement,
CPU time by process role, the peers' commands and the side venv's stamp (no server started:
a real run starts three servers and builds a 1.4 GB venv, see the module docstrings)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tools import embedding_peers as peers
from tools.bench_embeddings import main
from tools.bench_embeddings_peers import TreeMonitor, agreement, markdown


def run(per_s: float, p50: float, rss: float, cosine: float = 0.9999) -> dict:
    figures = {"embeddings_per_s": per_s, "latency_p50_ms": p50, "latency_p99_ms": 2 * p50, "peak_rss_mib": rss}
    return figures | {"cosine_min": cosine, "cosine_mean": cosine, "errors": 0, "cpu_ms_per_embedding": {"stub": 1.5}}


def report(missing: dict[str, str] | None = None) -> dict:
    results = {"ours": {"32": run(120, 50, 800)}, "vllm": {"32": run(100, 40, 2000)}}
    if not missing:
        results["infinity"] = {"32": run(150, 60, 600)}
    return {
        "machine": {"cpu": "test CPU", "cores": 2, "date": "2026-11-26"},
        "model": "all-MiniLM-L6-v2",
        "load": {"sentences": 10, "client": "openai", "rounds": 1, "dtype": "bfloat16"},
        "labels": dict(peers.LABELS),  # every system asked for, missing ones too
        "missing": missing or {},
        "results": results,
    }


def test_the_table_divides_ours_by_the_best_peer_for_each_figure():
    table = markdown(report())
    assert "| 32 | embeddings/s | 120.0 | 100.0 | 150.0 | 0.80x |" in table  # best: the highest
    assert "| 32 | latency p50 ms | 50.0 | 40.0 | 60.0 | 1.25x |" in table  # best: the lowest
    assert "| 32 | peak RSS MiB (process tree) | 800.0 | 2000.0 | 600.0 | 1.33x |" in table
    assert "| 32 | cosine vs sentence-transformers, min | 0.99990 | 0.99990 | 0.99990 |  |" in table
    assert "- ours (Triton + frontend), concurrency 32: stub 1.50" in table


def test_a_missing_peer_is_reported_and_the_others_still_compared():
    table = markdown(report({"infinity": "RuntimeError: pip install failed\nNo matching distribution"}))
    assert "| 32 | embeddings/s | 120.0 | 100.0 | 1.20x |" in table
    assert "**infinity-emb missing**: No matching distribution" in table


def test_ours_with_another_environment_gets_its_own_ratio_column():
    r = report()
    r["results"] = {"ours": r["results"]["ours"], "ours*": {"32": run(300, 30, 700)}, **r["results"]}
    r["labels"]["ours*"] = "ours, OMP_NUM_THREADS=1"
    table = markdown(r)
    assert "| ours (Triton + frontend) | ours, OMP_NUM_THREADS=1 | vLLM pooling server | infinity-emb | " in table
    assert "| ours/best peer | ours*/best peer |" in table
    assert "| 32 | embeddings/s | 120.0 | 300.0 | 100.0 | 150.0 | 0.80x | 2.00x |" in table


def test_agreement_gives_min_and_mean_cosine_over_the_answered_texts():
    ref = np.eye(3)
    got = {0: [2.0, 0.0, 0.0], 2: [0.0, 1.0, 1.0]}  # unnormalised; text 1 unanswered
    figures = agreement(ref, got)
    assert figures["cosine_min"] == pytest.approx(np.sqrt(0.5), abs=1e-6)
    assert figures["cosine_mean"] == pytest.approx((1 + np.sqrt(0.5)) / 2, abs=1e-6)
    assert agreement(ref, {}) == {"cosine_min": None, "cosine_mean": None}


def test_cpu_time_is_summed_by_role_per_item_and_counts_new_processes_whole():
    before = {0: ("client", 1.0), 11: ("stub", 5.0)}
    after = {0: ("client", 1.2), 11: ("stub", 6.0), 12: ("stub", 0.5), 13: ("idle", 0.001)}
    assert TreeMonitor.cpu_ms_per_item(before, after, 100) == {"client": 2.0, "stub": 15.0}


@pytest.mark.slow
def test_the_monitor_sees_a_child_process_rss(tmp_path: Path):
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(30)"])
    try:
        with TreeMonitor(interval=0.05) as monitor:
            deadline = time.monotonic() + 10
            while monitor.peak < 64 << 20 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert monitor.peak >= 64 << 20
        assert child.pid in TreeMonitor.cpu()
    finally:
        child.kill()
        child.wait()


def test_peer_commands_serve_the_folder_in_pooling_mode_with_our_dtype(monkeypatch, tmp_path: Path):
    vllm = peers.vllm_server(tmp_path, "bfloat16", 1234)
    assert ["--runner", "pooling"] == vllm.command[vllm.command.index("--runner") :][:2]
    assert vllm.base_url == "http://127.0.0.1:1234/v1" and "--dtype" in vllm.command
    monkeypatch.setattr(peers, "ensure_infinity", lambda log: Path("/venv/bin/infinity_emb"))
    infinity = peers.infinity_server(tmp_path, "bfloat16", 1234, print)
    assert infinity.command[:2] == ["/venv/bin/infinity_emb", "v2"] and infinity.base_url == "http://127.0.0.1:1234"
    assert ["--engine", "torch", "--device", "cpu", "--dtype", "bfloat16"] == infinity.command[6:12]
    assert infinity.env["HF_HUB_OFFLINE"] == "1"


def test_the_infinity_venv_is_ready_only_when_its_stamp_matches(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(peers, "INFINITY_VENV", tmp_path)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "infinity_emb").write_text("")
    assert not peers.infinity_ready()
    (tmp_path / ".triton-llm-stamp").write_text(peers._stamp())
    assert peers.infinity_ready()
    monkeypatch.setattr(peers, "INFINITY_PINS", [*peers.INFINITY_PINS, "extra==1"])
    assert not peers.infinity_ready()


def test_the_infinity_venv_pins_the_projects_own_torch_build():
    from importlib import metadata

    assert f"torch=={metadata.version('torch')}" in peers.INFINITY_PINS  # the CPU wheel on disk, not a CUDA one


def test_environment_is_restored_after_a_server_starts(monkeypatch):
    monkeypatch.delenv("PEER_TEST_VAR", raising=False)
    monkeypatch.setenv("PEER_TEST_KEEP", "old")
    with peers.environment({"PEER_TEST_VAR": "1", "PEER_TEST_KEEP": "new"}):
        assert os.environ["PEER_TEST_VAR"] == "1" and os.environ["PEER_TEST_KEEP"] == "new"
    assert "PEER_TEST_VAR" not in os.environ and os.environ["PEER_TEST_KEEP"] == "old"


def test_peers_compare_embeddings_only_and_ours_env_needs_peers():
    with pytest.raises(SystemExit):
        main(["--peers", "--mode", "rerank"])
    with pytest.raises(SystemExit):
        main(["--ours-env", "OMP_NUM_THREADS=1"])
