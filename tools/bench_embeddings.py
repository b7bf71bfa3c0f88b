"""Embeddings (or rerank pairs) per second, with Triton's dynamic batching on and off, in one run.

    python -m tools.bench_embeddings                 # 1,000 short sentences, concurrency 1 and 32
    python -m tools.bench_embeddings --quick         # a smoke run
    python -m tools.bench_embeddings --mode rerank   # /v1/rerank of a cross-encoder: pairs/s
    python -m tools.bench_embeddings --peers         # ours against vLLM's and infinity-emb's servers

It starts our stack (Triton + the OpenAI frontend) on a repository of two copies of the
`minilm` entry: as shipped (`dynamic_batching {}`) and without dynamic batching. Each
sentence is one `/v1/embeddings` request from the official `openai` SDK (AsyncOpenAI), with
N requests in flight. Output, in --out: bench.json, bench.md (embeddings/s and latency per
level, and the ratio batching on / off) and bench.png.

`--mode rerank` serves a cross-encoder of ms-marco-MiniLM-L-6-v2's shape instead: MiniLM's
weights under a one-label classification head (random: no real cross-encoder is at hand
offline, and the head is one 384 x 1 layer, so the compute is the real model's). Each
request is one `/v1/rerank` of a query with `--documents` sentences (plain HTTP, httpx).

`--peers [vllm infinity]` serves the same MiniLM folder with ours (as shipped, batching on) and
each peer (tools/embedding_peers.py says what they are and how they start), one at a time, and
drives each with the same client and texts. Per system and level it adds the cosine of each
answer with sentence-transformers' float32 embedding (min, mean), the peak RSS of the server's
process tree, and CPU ms per embedding by process (where the time goes), and the table gives
ours / the best peer. A peer that cannot be installed or started is reported missing.
`--ours-env OMP_NUM_THREADS=1` (say) runs ours a second time with that environment, as "ours*".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

from tools import embedding_peers as peers
from tools.bench import ROOT, machine, running
from triton_llm.cli.serve import free_port

console = Console(stderr=True)
SYSTEMS = {"on": "minilm", "off": "minilm-nobatch"}
RERANK_SYSTEMS = {"on": "cross-encoder", "off": "cross-encoder-nobatch"}
SUBJECTS = ["The cat", "A storm", "Our team", "The old bridge", "Each server", "My neighbour", "The river", "A robot"]
VERBS = ["watched", "crossed", "repaired", "ignored", "described", "followed", "painted", "measured"]
OBJECTS = ["the quiet harbour", "a long report", "the morning train", "three red apples", "the city lights",
           "an empty stadium", "the mountain road", "a small garden"]  # fmt: skip


def sentences(n: int, seed: int = 0) -> list[str]:
    """n short sentences (8-12 tokens), the same for a given seed."""
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} on day {i}." for i in range(n)]


def repository(dest: Path, systems: dict[str, str] = SYSTEMS, model: Path | None = None) -> Path:
    """The demo `minilm` entry as it ships (or serving `model`), and a copy without dynamic batching."""
    source = ROOT / "model_repository" / "minilm"
    for name in systems.values():
        shutil.copytree(source, dest / name)
        settings = json.loads((source / "1" / "model.json").read_text())
        settings["model"] = str(model or minilm_folder())
        (dest / name / "1" / "model.json").write_text(json.dumps(settings))
    if "off" in systems:
        config = dest / systems["off"] / "config.pbtxt"
        config.write_text(re.sub(r"(?m)^dynamic_batching .*$", "", config.read_text()))
    return dest


def minilm_folder() -> Path:
    """The folder the shipped `minilm` entry serves."""
    source = ROOT / "model_repository" / "minilm" / "1"
    return (source / json.loads((source / "model.json").read_text())["model"]).resolve()


def cross_encoder(dest: Path) -> Path:
    """MiniLM's weights under a one-label sequence-classification head (seeded), saved to `dest`."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    minilm = minilm_folder()
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=1).save_pretrained(dest)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(dest)
    return dest


async def drive(
    base_url: str, model: str, texts: list[str], concurrency: int, on_done, documents: int = 0, vectors=None
) -> dict:
    """Each text one /v1/embeddings request; with `documents`, each text a rerank query of
    that many other sentences (the next ones, cyclically). `vectors` (a dict) gets each text's embedding."""
    import httpx
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    http = httpx.AsyncClient(base_url=base_url, timeout=300)
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(range(len(texts))))

    async def call(i: int) -> None:
        if not documents:
            response = await client.embeddings.create(model=model, input=texts[i])
            if vectors is not None:
                vectors[i] = response.data[0].embedding
            return
        docs = [texts[(i + k) % len(texts)] for k in range(1, documents + 1)]
        (await http.post("/rerank", json={"model": model, "query": texts[i], "documents": docs})).raise_for_status()

    async def worker():
        nonlocal errors
        while queue:
            i = queue.pop()
            started = time.perf_counter()
            try:
                await call(i)
                latencies.append(time.perf_counter() - started)
            except Exception:
                errors += 1
            on_done()

    await call(0)  # warm up
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.close()
    await http.aclose()
    latencies.sort()
    return {
        unit(documents) + "_per_s": len(latencies) * max(documents, 1) / elapsed,
        "latency_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "latency_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
        "completed": len(latencies),
        "errors": errors,
        "seconds": elapsed,
    }


def unit(documents: int) -> str:
    return "pairs" if documents else "embeddings"


def bench(opts: argparse.Namespace) -> dict:
    texts = sentences(opts.num_sentences, opts.seed)
    rerank = opts.mode == "rerank"
    systems = RERANK_SYSTEMS if rerank else SYSTEMS
    documents = opts.documents if rerank else 0
    results: dict[str, dict[str, dict]] = {s: {} for s in systems}
    opts.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()  # others' work on the machine, reported beside the figures
    with tempfile.TemporaryDirectory() as tmp:
        model = cross_encoder(Path(tmp) / "cross-encoder") if rerank else None
        (Path(tmp) / "repo").mkdir()
        repo = repository(Path(tmp) / "repo", systems, model)
        port = free_port()
        cmd = stack_command(repo, port)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            total = len(systems) * len(opts.concurrency) * len(texts) * opts.rounds
            task = progress.add_task("starting the stack", total=total)
            with running(cmd, f"http://127.0.0.1:{port}/health", opts.out / "stack.log"):
                for c in opts.concurrency:
                    # Rounds alternate on and off and keep each one's best: on a shared machine a
                    # neighbour's burst then slows one round, not one system's only run.
                    for _ in range(opts.rounds):
                        for system, name in systems.items():
                            progress.update(task, description=f"batching {system}: concurrency {c}")
                            url, advance = f"http://127.0.0.1:{port}/openai/v1", lambda: progress.advance(task)
                            run = asyncio.run(drive(url, name, texts, c, advance, documents))
                            best = results[system].get(str(c))
                            if best is None or run[f"{unit(documents)}_per_s"] > best[f"{unit(documents)}_per_s"]:
                                results[system][str(c)] = run
    if rerank:
        what = "a cross-encoder of ms-marco-MiniLM-L-6-v2's shape (MiniLM's weights, a random one-label head)"
        client = f"httpx, one /v1/rerank of a sentence with {documents} others per request"
    else:
        what, client = "all-MiniLM-L6-v2 (model_repository/minilm)", "openai.AsyncOpenAI, one sentence per request"
    load = {"sentences": len(texts), "seed": opts.seed, "client": client, "documents": documents, "rounds": opts.rounds}
    load["load_average_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    return {"machine": machine(), "model": what, "load": load, "results": results}


def stack_command(repo: Path, port: int) -> list[str]:
    return [
        sys.executable, "-m", "triton_llm.cli.serve", f"--model-repository={repo}", f"--http-port={free_port()}",
        f"--grpc-port={free_port()}", f"--metrics-port={free_port()}", f"--frontend-port={port}",
    ]  # fmt: skip


def markdown(report: dict) -> str:
    if "missing" in report:
        from tools.bench_embeddings_peers import markdown as peers_markdown

        return peers_markdown(report)
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['date']}. Model: {report['model']}. "
        f"Load: {report['load']['sentences']} sentences, {report['load']['client']}.",
        "",
        "| concurrency | figure | batching off | batching on | on/off |",
        "|---|---|---|---|---|",
    ]
    res = report["results"]
    per_s = unit(report["load"].get("documents", 0))
    for c in res["on"]:
        on, off = res["on"][c], res["off"][c]
        for key, label in ((f"{per_s}_per_s", f"{per_s}/s"), ("latency_p50_ms", "latency p50 ms"),
                           ("latency_p99_ms", "latency p99 ms")):  # fmt: skip
            ratio = f"{on[key] / off[key]:.2f}x" if on[key] and off[key] else ""
            lines.append(f"| {c} | {label} | {off[key]:.1f} | {on[key]:.1f} | {ratio} |")
        lines.append(f"| {c} | errors | {off['errors']} | {on['errors']} |  |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    documents = report["load"].get("documents", 0)
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = report.get("labels") or {"off": "dynamic batching off", "on": "dynamic batching on"}
    for system, label in labels.items():
        levels = list(report["results"][system])
        ax.plot([int(c) for c in levels], [report["results"][system][c][f"{unit(documents)}_per_s"] for c in levels],
                marker="o", label=label)  # fmt: skip
    ax.set_xlabel(f"concurrent requests ({f'a query and {documents} documents' if documents else 'one sentence'} each)")
    ax.set_ylabel(f"{unit(documents)} / s")
    ax.set_xscale("log", base=2)
    ax.legend()
    endpoint = "MiniLM-L6 cross-encoder via /v1/rerank" if documents else "all-MiniLM-L6-v2 via /v1/embeddings"
    ax.set_title(f"{endpoint}, {report['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 40 sentences")
    parser.add_argument("--mode", choices=["embeddings", "rerank"], default="embeddings")
    parser.add_argument("--documents", type=int, default=8, help="rerank: documents per request (default 8)")
    parser.add_argument("--num-sentences", type=int, default=None, help="default 1000 (--quick: 40)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="alternating on/off rounds; each keeps its best")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--peers", nargs="*", choices=peers.PEERS, default=None,
                        help="ours against these servers (none named: all) instead of batching on/off")  # fmt: skip
    parser.add_argument("--ours-env", nargs="+", metavar="KEY=VALUE",
                        help="with --peers: ours once more with this environment (e.g. OMP_NUM_THREADS=1)")  # fmt: skip
    opts = parser.parse_args(argv)
    opts.num_sentences = opts.num_sentences or (40 if opts.quick else 1000)
    if opts.peers is not None:
        opts.peers = opts.peers or list(peers.PEERS)
        if opts.mode != "embeddings":
            parser.error("--peers compares /v1/embeddings only")
    elif opts.ours_env:
        parser.error("--ours-env goes with --peers")
    mode = "embeddings-peers" if opts.peers else opts.mode
    opts.out = opts.out or ROOT / "results" / f"bench-{mode}" / time.strftime("%Y%m%d-%H%M%S")
    if opts.peers:
        from tools.bench_embeddings_peers import bench_peers

        report = bench_peers(opts)
    else:
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
