"""Embeddings per second, with Triton's dynamic batching on and off, in one run.

    python -m tools.bench_embeddings            # 1,000 short sentences, concurrency 1 and 32
    python -m tools.bench_embeddings --quick    # a smoke run

It starts our stack (Triton + the OpenAI frontend) on a repository of two copies of the
`minilm` entry: as shipped (`dynamic_batching {}`) and without dynamic batching. Each
sentence is one `/v1/embeddings` request from the official `openai` SDK (AsyncOpenAI), with
N requests in flight. Output, in --out: bench.json, bench.md (embeddings/s and latency per
level, and the ratio batching on / off) and bench.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tools.bench import ROOT, machine, running
from triton_llm.cli.serve import free_port

console = Console(stderr=True)
SYSTEMS = {"on": "minilm", "off": "minilm-nobatch"}
SUBJECTS = ["The cat", "A storm", "Our team", "The old bridge", "Each server", "My neighbour", "The river", "A robot"]
VERBS = ["watched", "crossed", "repaired", "ignored", "described", "followed", "painted", "measured"]
OBJECTS = ["the quiet harbour", "a long report", "the morning train", "three red apples", "the city lights",
           "an empty stadium", "the mountain road", "a small garden"]  # fmt: skip


def sentences(n: int, seed: int = 0) -> list[str]:
    """n short sentences (8-12 tokens), the same for a given seed."""
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} on day {i}." for i in range(n)]


def repository(dest: Path) -> Path:
    """The demo `minilm` entry as it ships, and a copy without dynamic batching."""
    source = ROOT / "model_repository" / "minilm"
    for name in SYSTEMS.values():
        shutil.copytree(source, dest / name)
        settings = json.loads((source / "1" / "model.json").read_text())
        settings["model"] = str((source / "1" / settings["model"]).resolve())
        (dest / name / "1" / "model.json").write_text(json.dumps(settings))
    config = dest / SYSTEMS["off"] / "config.pbtxt"
    config.write_text(re.sub(r"(?m)^dynamic_batching .*$", "", config.read_text()))
    return dest


async def drive(base_url: str, model: str, texts: list[str], concurrency: int, on_done) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(texts))

    async def worker():
        nonlocal errors
        while queue:
            text = queue.pop()
            started = time.perf_counter()
            try:
                await client.embeddings.create(model=model, input=text)
                latencies.append(time.perf_counter() - started)
            except Exception:
                errors += 1
            on_done()

    await client.embeddings.create(model=model, input="warm up")
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.close()
    latencies.sort()
    return {
        "embeddings_per_s": len(latencies) / elapsed,
        "latency_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "latency_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
        "completed": len(latencies),
        "errors": errors,
        "seconds": elapsed,
    }


def bench(opts: argparse.Namespace) -> dict:
    texts = sentences(opts.num_sentences, opts.seed)
    results: dict[str, dict[str, dict]] = {s: {} for s in SYSTEMS}
    opts.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        repo = repository(Path(tmp))
        port = free_port()
        cmd = [
            sys.executable, "-m", "triton_llm.cli.serve", f"--model-repository={repo}", f"--http-port={free_port()}",
            f"--grpc-port={free_port()}", f"--metrics-port={free_port()}", f"--frontend-port={port}",
        ]  # fmt: skip
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("starting the stack", total=len(SYSTEMS) * len(opts.concurrency) * len(texts))
            with running(cmd, f"http://127.0.0.1:{port}/health", opts.out / "stack.log"):
                for c in opts.concurrency:
                    for system, model in SYSTEMS.items():
                        progress.update(task, description=f"batching {system}: concurrency {c}")
                        results[system][str(c)] = asyncio.run(
                            drive(f"http://127.0.0.1:{port}/openai/v1", model, texts, c, lambda: progress.advance(task))
                        )
    return {
        "machine": machine(),
        "model": "all-MiniLM-L6-v2 (model_repository/minilm)",
        "load": {"sentences": len(texts), "seed": opts.seed, "client": "openai.AsyncOpenAI, one sentence per request"},
        "results": results,
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['date']}. Model: {report['model']}. "
        f"Load: {report['load']['sentences']} sentences, {report['load']['client']}.",
        "",
        "| concurrency | figure | batching off | batching on | on/off |",
        "|---|---|---|---|---|",
    ]
    res = report["results"]
    for c in res["on"]:
        on, off = res["on"][c], res["off"][c]
        for key, label in (("embeddings_per_s", "embeddings/s"), ("latency_p50_ms", "latency p50 ms"),
                           ("latency_p99_ms", "latency p99 ms")):  # fmt: skip
            ratio = f"{on[key] / off[key]:.2f}x" if on[key] and off[key] else ""
            lines.append(f"| {c} | {label} | {off[key]:.1f} | {on[key]:.1f} | {ratio} |")
        lines.append(f"| {c} | errors | {off['errors']} | {on['errors']} |  |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = list(report["results"]["on"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for system, label in (("off", "dynamic batching off"), ("on", "dynamic batching on")):
        ax.plot([int(c) for c in levels], [report["results"][system][c]["embeddings_per_s"] for c in levels],
                marker="o", label=label)  # fmt: skip
    ax.set_xlabel("concurrent requests (one sentence each)")
    ax.set_ylabel("embeddings / s")
    ax.set_xscale("log", base=2)
    ax.legend()
    ax.set_title(f"all-MiniLM-L6-v2 via /v1/embeddings, {report['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 40 sentences")
    parser.add_argument("--num-sentences", type=int, default=None, help="default 1000 (--quick: 40)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args(argv)
    opts.num_sentences = opts.num_sentences or (40 if opts.quick else 1000)
    opts.out = opts.out or ROOT / "results" / "bench-embeddings" / time.strftime("%Y%m%d-%H%M%S")
    report = bench(opts)
    table = markdown(report)
    (opts.out / "bench.json").write_text(json.dumps(report, indent=2))
    (opts.out / "bench.md").write_text(table)
    plot(report, opts.out / "bench.png")
    console.print(table)
    console.print(f"wrote {opts.out}/bench.json, bench.md, bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
