"""`python -m tools.bench_embeddings --peers`: ours against other embedding servers, one run.

Each system (ours as shipped, then each peer of tools/embedding_peers.py) is started alone on
the same MiniLM folder and driven by tools.bench_embeddings' client (openai.AsyncOpenAI, one text
per /v1/embeddings request) at each concurrency. Beside embeddings/s and latency it measures, per
level: the cosine of every answer with sentence-transformers' float32 embedding of that text
(min and mean), the peak RSS of the server's process tree, and CPU milliseconds per embedding by
process role (frontend, tritonserver, the stub, vLLM's engine core, ...), to show where time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path

import psutil
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tools import embedding_peers as peers
from tools.bench import ROOT, machine, running
from tools.bench_embeddings import SYSTEMS, console, drive, minilm_folder, repository, sentences, stack_command
from triton_llm.cli.serve import free_port


def _label(p: psutil.Process) -> str:
    """A process's role: its name, or for Python the module or script it runs."""
    name, cmd = p.name(), p.cmdline()
    if name.startswith("python") and len(cmd) > 1:
        return cmd[cmd.index("-m") + 1].rsplit(".", 1)[-1] if "-m" in cmd else Path(cmd[1]).name
    return name


class TreeMonitor:
    """Peak RSS of this process's children (the server under test, and theirs), sampled in a thread,
    and CPU time (user + sys) per process role between two `cpu()` calls. RSS is summed over
    processes, so pages they share count once per process: an upper bound, the same for every system."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            total = 0
            for p in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)

    def reset_peak(self) -> None:
        self.peak = 0

    @staticmethod
    def cpu() -> dict[int, tuple[str, float]]:
        """pid -> (role, CPU seconds so far) for the tree, and the client (this process) as pid 0."""
        me = psutil.Process().cpu_times()
        out = {0: ("client (bench)", me.user + me.system)}
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[p.pid] = (_label(p), t.user + t.system)
        return out

    @staticmethod
    def cpu_ms_per_item(before: dict, after: dict, items: int) -> dict[str, float]:
        """CPU milliseconds per embedding by role, over what ran between `before` and `after`."""
        by_role: dict[str, float] = {}
        for pid, (role, seconds) in after.items():
            used = seconds - before.get(pid, (role, 0.0))[1]
            by_role[role] = by_role.get(role, 0.0) + used
        return {role: round(1000 * s / max(items, 1), 3) for role, s in sorted(by_role.items()) if s > 0.005}


def reference(folder: Path, texts: list[str]):
    """sentence-transformers' own float32 embeddings of `texts`, unit length."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    vectors = SentenceTransformer(str(folder), device="cpu").encode(texts, batch_size=64, convert_to_numpy=True)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def agreement(ref, vectors: dict[int, list[float]]) -> dict[str, float | None]:
    """Min and mean cosine of a server's embeddings with the reference, over the texts it answered."""
    import numpy as np

    if not vectors:
        return {"cosine_min": None, "cosine_mean": None}
    ids = sorted(vectors)
    got = np.asarray([vectors[i] for i in ids], dtype=np.float64)
    cos = (got / np.linalg.norm(got, axis=1, keepdims=True) * ref[ids]).sum(axis=1)
    return {"cosine_min": round(float(cos.min()), 6), "cosine_mean": round(float(cos.mean()), 6)}


def server(system: str, tmp: Path, dtype: str, env: dict[str, str] | None = None) -> peers.Server:
    port = free_port()
    if system == "vllm":
        return peers.vllm_server(minilm_folder(), dtype, port)
    if system == "infinity":
        return peers.infinity_server(minilm_folder(), dtype, port, lambda line: console.print(line))
    repo = repository(tmp, {"on": SYSTEMS["on"]})
    health, base = f"http://127.0.0.1:{port}/health", f"http://127.0.0.1:{port}/openai/v1"
    return peers.Server(stack_command(repo, port), health, base, env or {})


def levels(srv: peers.Server, texts: list[str], ref, opts: argparse.Namespace, monitor: TreeMonitor, advance) -> dict:
    """Figures per concurrency level against one running server; each level keeps its best round."""
    results: dict[str, dict] = {}
    # Unmeasured warm-up at the top level, the same for every system: first-call costs (the
    # client's imports, a server's first batches of each shape) stay out of the figures.
    asyncio.run(drive(srv.base_url, "minilm", texts[:64], max(opts.concurrency), lambda: None))
    for c in opts.concurrency:
        for _ in range(opts.rounds):
            monitor.reset_peak()
            before, vectors = monitor.cpu(), {}
            run = asyncio.run(drive(srv.base_url, "minilm", texts, c, advance, 0, vectors))
            run["cpu_ms_per_embedding"] = monitor.cpu_ms_per_item(before, monitor.cpu(), len(texts) + 1)
            run |= {"peak_rss_mib": round(monitor.peak / 2**20, 1), **agreement(ref, vectors)}
            if str(c) not in results or run["embeddings_per_s"] > results[str(c)]["embeddings_per_s"]:
                results[str(c)] = run
    return results


def bench_peers(opts: argparse.Namespace) -> dict:
    """Ours (batching on, as shipped) then each peer, alone, on the same folder, texts and client."""
    from triton_llm.hf_loading import cpu_dtype

    texts = sentences(opts.num_sentences, opts.seed)
    settings = json.loads((ROOT / "model_repository" / "minilm" / "1" / "model.json").read_text())
    dtype = cpu_dtype() if settings.get("dtype", "auto") == "auto" else settings["dtype"]
    ref = reference(minilm_folder(), texts)
    # `--ours-env K=V`: ours a second time with that environment ("ours*"), to try a setting in the same run.
    variant = dict(kv.split("=", 1) for kv in getattr(opts, "ours_env", None) or [])
    systems = ["ours", *(["ours*"] if variant else []), *opts.peers]
    labels = {s: peers.LABELS.get(s, f"ours, {' '.join(opts.ours_env or [])}") for s in systems}
    results: dict[str, dict[str, dict]] = {}
    missing: dict[str, str] = {}
    opts.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("", total=len(systems) * len(opts.concurrency) * len(texts) * opts.rounds)
        for system in systems:
            progress.update(task, description=f"{system}: starting")
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    srv = server(system, Path(tmp), dtype, variant if system == "ours*" else None)
                    log = opts.out / f"{system.replace('*', '-env')}.log"
                    with (
                        peers.environment(srv.env),
                        TreeMonitor() as monitor,
                        running(srv.command, srv.health_url, log),
                    ):
                        results[system] = levels(srv, texts, ref, opts, monitor, lambda: progress.advance(task))
            except Exception as e:  # a peer that cannot be installed or started is reported, the others still run
                if system == "ours":
                    raise
                results.pop(system, None)
                missing[system] = f"{type(e).__name__}: {e}"[-600:]
                console.print(f"[red]{system} missing:[/red] {missing[system]}")
    load = {"sentences": len(texts), "seed": opts.seed, "rounds": opts.rounds, "dtype": dtype,
            "client": "openai.AsyncOpenAI, one sentence per request", "documents": 0,
            "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}  # fmt: skip
    return {"machine": machine(), "model": "all-MiniLM-L6-v2 (model_repository/minilm)", "load": load,
            "labels": labels, "missing": missing, "results": results}  # fmt: skip


# figure -> (label, higher is better; None: no ratio)
FIGURES = {
    "embeddings_per_s": ("embeddings/s", True),
    "latency_p50_ms": ("latency p50 ms", False),
    "latency_p99_ms": ("latency p99 ms", False),
    "peak_rss_mib": ("peak RSS MiB (process tree)", False),
    "cosine_min": ("cosine vs sentence-transformers, min", None),
    "cosine_mean": ("cosine vs sentence-transformers, mean", None),
}


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    return f"{value:.5f}" if key.startswith("cosine") else f"{value:.1f}"


def markdown(report: dict) -> str:
    m, load, res = report["machine"], report["load"], report["results"]
    systems = list(res)
    mine = [s for s in systems if s.startswith("ours")]  # ours, and "ours*" with --ours-env
    others = [s for s in systems if s not in mine]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['date']}. Model: {report['model']}, {load['dtype']} everywhere. "
        f"Load: {load['sentences']} sentences, {load['client']}; best of {load['rounds']} round(s) per level.",
        "",
        "| concurrency | figure | "
        + " | ".join(report["labels"][s] for s in systems)
        + " | "
        + " | ".join(f"{s}/best peer" for s in mine)
        + " |",
        "|---|---|" + "---|" * (len(systems) + len(mine)),
    ]
    for c in res["ours"]:
        for key, (label, higher) in FIGURES.items():
            values = {s: res[s].get(c, {}).get(key) for s in systems}
            peer_values = [values[s] for s in others if values[s] is not None]
            ratios = ["" for _ in mine]
            if higher is not None and peer_values:
                best = max(peer_values) if higher else min(peer_values)
                ratios = [f"{values[s] / best:.2f}x" if values[s] else "" for s in mine]
            cells = [_cell(key, values[s]) for s in systems] + ratios
            lines.append(f"| {c} | {label} | " + " | ".join(cells) + " |")
        errors = [str(res[s].get(c, {}).get("errors", "-")) for s in systems] + ["" for _ in mine]
        lines.append(f"| {c} | errors | " + " | ".join(errors) + " |")
    lines += ["", "CPU ms per embedding, by process (user + sys; the client is the same for every system):", ""]
    for s in systems:
        for c, run in res[s].items():
            parts = ", ".join(f"{role} {ms:.2f}" for role, ms in run.get("cpu_ms_per_embedding", {}).items())
            lines.append(f"- {report['labels'][s]}, concurrency {c}: {parts}")
    for s, why in report.get("missing", {}).items():
        lines.append(f"\n**{report['labels'].get(s, s)} missing**: {why.splitlines()[-1] if why else '?'}")
    return "\n".join(lines) + "\n"
