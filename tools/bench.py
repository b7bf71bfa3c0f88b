"""Our stack against vLLM's own OpenAI server: same model, same engine settings, same client.

    python -m tools.bench                   # 128 in / 64 out tokens, concurrency 1, 16, 64
    python -m tools.bench --endpoint chat   # the same through chat completions (streamed)
    python -m tools.bench --quick           # a smoke run with tiny loads

In one run it starts vLLM's server (`python -m vllm.entrypoints.openai.api_server`), drives
it with vLLM's own load generator (`vllm.benchmarks.serve`: random dataset, fixed seed), stops
it, then does the same against Triton + our OpenAI frontend (`/openai/v1/completions`, or
with `--endpoint chat` both servers' chat completions: each prompt is one user message, which
each side renders with the model's chat template).
Engine settings for both come from the model's `model.json`, resolved the way our model
resolves them. Output, in --out: bench.json (every figure), bench.md (a table with the ratio
ours/vLLM per figure and level) and bench.png (throughput and TTFT against concurrency).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tools import bench_triton
from triton_llm.cli.serve import free_port, stop_group, wait_ready

ROOT = Path(__file__).resolve().parent.parent  # the checkout: these dev scripts run from one
console = Console(stderr=True)

# figure key in vllm.benchmarks.serve's result -> (label, higher is better)
FIGURES: dict[str, tuple[str, bool]] = {
    "output_throughput": ("output tok/s", True),
    "request_throughput": ("req/s", True),
    "median_ttft_ms": ("TTFT p50 ms", False),
    "p99_ttft_ms": ("TTFT p99 ms", False),
    "median_itl_ms": ("ITL p50 ms", False),
    "p99_itl_ms": ("ITL p99 ms", False),
}
# "triton" drives the same Triton as "ours" over gRPC, skipping the frontend; "hf" drives
# the same model on the transformers engine (model_repository/smollm2-hf) that way.
SYSTEMS = ("vllm", "ours", "triton", "hf")
LABELS = {
    "vllm": "vLLM server",
    "ours": "ours (frontend)",
    "triton": "Triton gRPC direct",
    "hf": "transformers engine (gRPC)",
}
SHORT = {"vllm": "vLLM", "ours": "ours", "triton": "direct", "hf": "hf"}
# endpoint -> (vllm.benchmarks.serve backend, path on vLLM's server); ours is under /openai.
ENDPOINTS = {"completions": ("openai", "/v1/completions"), "chat": ("openai-chat", "/v1/chat/completions")}


def engine_args(model_entry: Path) -> dict[str, Any]:
    from triton_llm.generation.engines.vllm_args import engine_args
    from triton_llm.settings import VllmSettings, load_model_json, parse_settings

    return engine_args(parse_settings(VllmSettings, load_model_json(model_entry / "1")))


def vllm_server_command(args: dict[str, Any], port: int) -> list[str]:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1", "--port", str(port)]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value is False:
            cmd.append("--no-" + key.replace("_", "-"))
        else:
            cmd += [flag, str(value)]
    return cmd + ["--disable-uvicorn-access-log", "--uvicorn-log-level", "warning"]


@contextlib.contextmanager
def running(cmd: list[str], health_url: str, log: Path, timeout: float = 600) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if not wait_ready(proc, health_url, timeout):
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[2]} exited with {proc.returncode}; see {log}")
                raise TimeoutError(f"{health_url} not ready after {timeout} s; see {log}")
            yield
        finally:
            stop_group(proc, grace=40)


def run_load(
    target: tuple[str, str, str], tokenizer: str, opts: argparse.Namespace, concurrency: int, prompts: int
) -> dict:
    """Drive one (backend, base_url, endpoint) with vllm.benchmarks.serve at one level."""
    from vllm.benchmarks import serve

    bench_triton.register()
    backend, base_url, endpoint = target
    parser = argparse.ArgumentParser()
    serve.add_cli_args(parser)
    # fmt: off
    ns = parser.parse_args([
        "--backend", backend, "--base-url", base_url, "--endpoint", endpoint,
        "--model", "smollm2", "--tokenizer", tokenizer,
        "--dataset-name", "random", "--random-input-len", str(opts.input_len),
        "--random-output-len", str(opts.output_len), "--ignore-eos",
        "--num-prompts", str(prompts), "--max-concurrency", str(concurrency), "--seed", str(opts.seed),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
        "--disable-tqdm", "--num-warmups", str(min(concurrency, 4)),
    ])
    # fmt: on
    with contextlib.redirect_stdout(sys.stderr if opts.verbose else open(os.devnull, "w")):
        result = serve.main(ns)
    figures = {key: float(result.get(key, float("nan"))) for key in FIGURES}
    figures["completed"] = int(result.get("completed", 0))
    figures["errors"] = int(prompts - figures["completed"])
    return figures


def prompts_for(concurrency: int, opts: argparse.Namespace) -> int:
    # Enough requests for a stable median, few enough for 2 cores: 4 rounds at each level.
    return opts.num_prompts or max(8 if opts.quick else 16, 4 * concurrency if not opts.quick else 2 * concurrency)


def bench(opts: argparse.Namespace) -> dict:
    entry = ROOT / "model_repository" / opts.model
    args = engine_args(entry)
    tokenizer = args.get("tokenizer", args["model"])
    levels = opts.concurrency
    backend, path = ENDPOINTS[opts.endpoint]
    results: dict[str, dict[str, dict]] = {s: {} for s in opts.systems}
    opts.out.mkdir(parents=True, exist_ok=True)

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("benchmark", total=len(opts.systems) * len(levels))
        for server in ("vllm", "stack"):
            loads = [s for s in opts.systems if (s == "vllm") == (server == "vllm")]
            if not loads:
                continue
            port = free_port()
            if server == "vllm":
                cmd = vllm_server_command({**args, "served_model_name": "smollm2"}, port)
                targets = {"vllm": (backend, f"http://127.0.0.1:{port}", path)}
            else:
                grpc_port = free_port()
                cmd = [
                    sys.executable, "-m", "triton_llm.cli.serve", f"--model-repository={ROOT / 'model_repository'}",
                    f"--http-port={free_port()}", f"--grpc-port={grpc_port}", f"--metrics-port={free_port()}",
                    f"--frontend-port={port}",
                ]  # fmt: skip
                targets = {
                    "ours": (backend, f"http://127.0.0.1:{port}", "/openai" + path),
                    "triton": (bench_triton.BACKEND, f"http://127.0.0.1:{grpc_port}", "/smollm2"),
                    "hf": (bench_triton.BACKEND, f"http://127.0.0.1:{grpc_port}", "/smollm2-hf"),
                }
            progress.update(task, description=f"{server}: starting")
            with running(cmd, f"http://127.0.0.1:{port}/health", opts.out / f"{server}.log"):
                for c in levels:
                    for system in loads:
                        progress.update(task, description=f"{system}: concurrency {c}")
                        results[system][str(c)] = run_load(targets[system], tokenizer, opts, c, prompts_for(c, opts))
                        progress.advance(task)

    return {
        "machine": machine(),
        "model": str(args["model"]),
        "engine_args": {k: v for k, v in args.items() if k != "model"},
        "load": {"endpoint": opts.endpoint, "input_len": opts.input_len, "output_len": opts.output_len,
                 "seed": opts.seed, "prompts": {str(c): prompts_for(c, opts) for c in levels},
                 "client": "vllm.benchmarks.serve"},
        "results": results,
    }  # fmt: skip


def machine() -> dict[str, Any]:
    from triton_llm.hf_loading import cpu_flags

    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "bf16": bool(cpu_flags() & {"avx512_bf16", "amx_bf16"}),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def markdown(report: dict) -> str:
    """One column per system, then its ratio to the first one (vLLM's server when run)."""
    res = report["results"]
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, bf16 {'yes' if m['bf16'] else 'no'}; {m['date']}. "
        f"Load: {report['load'].get('endpoint', 'completions')}, "
        f"{report['load']['input_len']} in / {report['load']['output_len']} out tokens, "
        f"`vllm.benchmarks.serve` random dataset, seed {report['load']['seed']}. "
        f"Engine: {json.dumps(report['engine_args'])}.",
        "",
    ]
    systems = [s for s in SYSTEMS if s in res]
    base, others = systems[0], systems[1:]
    ratios = "".join(f" {LABELS[s]} | {SHORT[s]}/{SHORT[base]} |" for s in others)
    head = f"| concurrency | figure | {LABELS[base]} |" + ratios
    lines += [head, "|---" * (3 + 2 * len(others)) + "|"]
    prompts = report["load"]["prompts"]
    for c in res[base]:
        for key, (label, _) in FIGURES.items():
            b = res[base][c].get(key)
            cells = "".join(f" {_fmt(res[s][c].get(key))} | {_ratio(res[s][c].get(key), b)} |" for s in others)
            lines.append(f"| {c} | {label} | {_fmt(b)} |" + cells)
        errors = "".join(f" {res[s][c].get('errors', '-')} / {prompts[c]} | |" for s in others)
        lines.append(f"| {c} | errors / prompts | {res[base][c].get('errors', '-')} / {prompts[c]} |" + errors)
    levels = sorted(res[base], key=int)
    if len(levels) > 1:
        lo, hi = levels[0], levels[-1]
        scaling = ", ".join(
            f"{LABELS[s]} {_ratio(res[s][hi].get('output_throughput'), res[s][lo].get('output_throughput'))}"
            for s in systems
        )
        lines += ["", f"Output tok/s at concurrency {hi} over concurrency {lo}: {scaling}."]
    return "\n".join(lines) + "\n"


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "n/a"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for system, label in LABELS.items():
        if system not in report["results"]:
            continue
        levels = sorted(report["results"][system], key=int)
        xs = [int(c) for c in levels]
        ax1.plot(xs, [report["results"][system][c]["output_throughput"] for c in levels], marker="o", label=label)
        ax2.plot(xs, [report["results"][system][c]["median_ttft_ms"] for c in levels], marker="o", label=label)
    for ax, title in ((ax1, "Output tokens/s (higher is better)"), (ax2, "Median TTFT, ms (lower is better)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    m, endpoint = report["machine"], report["load"].get("endpoint", "completions")
    fig.suptitle(f"{endpoint}: {m['cpu']}, {m['cores']} cores, {m['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="entry of model_repository/ to serve")
    parser.add_argument("--concurrency", type=int, nargs="+", default=None)
    parser.add_argument("--input-len", type=int, default=None)
    parser.add_argument("--output-len", type=int, default=None)
    parser.add_argument("--num-prompts", type=int, default=None, help="per level (default: 4 rounds, at least 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--endpoint", choices=ENDPOINTS, default="completions", help="the OpenAI API to drive")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny loads, for a smoke run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true", help="show the load generator's own report")
    opts = parser.parse_args(argv)
    chat = opts.endpoint == "chat"
    opts.systems = opts.systems or (["vllm", "ours"] if chat else ["vllm", "ours", "triton"])
    if chat and {"triton", "hf"} & set(opts.systems):
        parser.error("--endpoint chat: triton and hf drive Triton's own protocol, which has no chat endpoint")
    opts.concurrency = opts.concurrency or ([1, 4] if opts.quick else [1, 16, 64])
    opts.input_len = opts.input_len or (32 if opts.quick else 128)
    opts.output_len = opts.output_len or (8 if opts.quick else 64)
    opts.out = opts.out or ROOT / "results" / "bench" / time.strftime("%Y%m%d-%H%M%S")

    report = bench(opts)
    table = markdown(report)
    (opts.out / "bench.json").write_text(json.dumps(report, indent=2))
    (opts.out / "bench.md").write_text(table)
    plot(report, opts.out / "bench.png")
    print(table)
    console.print(f"wrote {opts.out}/bench.json, bench.md, bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
