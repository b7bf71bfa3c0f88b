"""Our stack against vLLM's own OpenAI server: same model, same engine settings, same client.

    python -m tools.bench                   # 128 in / 64 out tokens, concurrency 1, 16, 64
    python -m tools.bench --endpoint chat   # the same through chat completions (streamed)
    python -m tools.bench --endpoint responses   # ... through the Responses API (streamed)
    python -m tools.bench --endpoint images      # image chats (one image each) on a tiny VLM
    python -m tools.bench --quick           # a smoke run with tiny loads

In one run it starts vLLM's server (`python -m vllm.entrypoints.openai.api_server`), drives
it with vLLM's own load generator (`vllm.benchmarks.serve`: random dataset, fixed seed), stops
it, then does the same against Triton + our OpenAI frontend (`/openai/v1/completions`, or
with `--endpoint chat` both servers' chat completions: each prompt is one user message, which
each side renders with the model's chat template; `responses` and `images`: tools/bench_surfaces.py).
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

from tools import bench_hops, bench_surfaces, bench_triton
from tools.bench_report import FIGURES, SYSTEMS, markdown, plot
from triton_llm.cli.serve import free_port, stop_group, wait_ready

ROOT = Path(__file__).resolve().parent.parent  # the checkout: these dev scripts run from one
console = Console(stderr=True)

ENDPOINTS = bench_surfaces.SURFACES  # --endpoint -> backend, path, dataset and model


def engine_args(model_entry: Path) -> dict[str, Any]:
    from triton_llm.generation.engines.vllm.args import engine_args
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
        else:  # a dict (limit_mm_per_prompt...) as the JSON vLLM's parser reads
            cmd += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
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


def run_traced(target: tuple[str, str, str], tokenizer: str, opts: argparse.Namespace, c: int, metrics: str | None):
    """One run of a level; with our frontend's `metrics` page, where its TTFT went (bench_hops)."""
    if not metrics:
        return run_load(target, tokenizer, opts, c, prompts_for(c, opts))
    run_load(target, tokenizer, opts, c, min(c, 4), warmups=0)  # the warm-up, apart: the hops' means leave it out
    before = bench_hops.scrape(metrics, opts.served)
    figures = run_load(target, tokenizer, opts, c, prompts_for(c, opts), warmups=0)
    figures["hops"] = bench_hops.breakdown(before, bench_hops.scrape(metrics, opts.served), figures["mean_ttft_ms"])
    return figures


def run_load(
    target: tuple[str, str, str],
    tokenizer: str,
    opts: argparse.Namespace,
    concurrency: int,
    prompts: int,
    warmups: int | None = None,
) -> dict:
    """Drive one (backend, base_url, endpoint) with vllm.benchmarks.serve at one level."""
    from vllm.benchmarks import serve

    bench_triton.register()
    parser = argparse.ArgumentParser()
    serve.add_cli_args(parser)
    warmups = min(concurrency, 4) if warmups is None else warmups
    surface = ENDPOINTS[opts.endpoint]
    ns = parser.parse_args(
        bench_surfaces.serve_argv(target, opts.served, tokenizer, surface, opts, concurrency, prompts, warmups)
    )
    with contextlib.redirect_stdout(sys.stderr if opts.verbose else open(os.devnull, "w")):
        result = serve.main(ns)
    figures = {key: float(result.get(key, float("nan"))) for key in (*FIGURES, "mean_ttft_ms")}
    figures["completed"] = int(result.get("completed", 0))
    figures["errors"] = int(prompts - figures["completed"])
    return figures


def prompts_for(concurrency: int, opts: argparse.Namespace) -> int:
    # Enough requests for a stable median, few enough for 2 cores: 4 rounds at each level.
    return opts.num_prompts or max(8 if opts.quick else 16, 4 * concurrency if not opts.quick else 2 * concurrency)


def bench(opts: argparse.Namespace) -> dict:
    surface = ENDPOINTS[opts.endpoint]
    repository, opts.served = bench_surfaces.repository(surface, opts.model)
    args = engine_args(repository / opts.served)
    entries = [e for e in (opts.served, "smollm2-hf") if (repository / e).is_dir()]
    if opts.no_prefix_caching:  # both servers without: vLLM's flag, and our entries' enable_prefix_caching
        args["enable_prefix_caching"] = False
    if opts.no_prefix_caching or opts.instance_count:  # our stack's entries, in a copy of the repository
        settings = {"enable_prefix_caching": False} if opts.no_prefix_caching else {}
        counts = {opts.served: opts.instance_count} if opts.instance_count else None
        repository = bench_surfaces.rewritten(repository, entries, opts.out / "repository", settings, counts)
    if opts.prefix_len and not opts.no_prefix_caching:
        args["enable_prefix_caching"] = True  # vLLM's default on a CPU too; said, for the report
    tokenizer = args.get("tokenizer", args["model"])
    levels = opts.concurrency
    backend, path = surface.backend, surface.path
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
                cmd = vllm_server_command({**args, "served_model_name": opts.served}, port)
                targets = {"vllm": (backend, f"http://127.0.0.1:{port}", path)}
            else:
                grpc_port = free_port()
                cmd = [
                    sys.executable, "-m", "triton_llm.cli.serve", f"--model-repository={repository}",
                    f"--http-port={free_port()}", f"--grpc-port={grpc_port}", f"--metrics-port={free_port()}",
                    f"--frontend-port={port}",
                ]  # fmt: skip
                targets = {
                    "ours": (backend, f"http://127.0.0.1:{port}", "/openai" + path),
                    "triton": (bench_triton.BACKEND, f"http://127.0.0.1:{grpc_port}", f"/{opts.served}"),
                    "hf": (bench_triton.BACKEND, f"http://127.0.0.1:{grpc_port}", "/smollm2-hf"),
                }
            progress.update(task, description=f"{server}: starting")
            metrics = f"http://127.0.0.1:{port}/metrics" if server == "stack" else None
            with running(cmd, f"http://127.0.0.1:{port}/health", opts.out / f"{server}.log"):
                for c in levels:
                    for system in loads:
                        progress.update(task, description=f"{system}: concurrency {c}")
                        runs = [
                            run_traced(targets[system], tokenizer, opts, c, metrics if system == "ours" else None)
                            for _ in range(opts.repeat)
                        ]
                        results[system][str(c)] = bench_hops.median_runs(runs)
                        progress.advance(task)

    return {
        "machine": machine(),
        "model": str(args["model"]),
        "engine_args": {k: v for k, v in args.items() if k != "model"},
        "load": {"endpoint": opts.endpoint, "input_len": opts.input_len, "output_len": opts.output_len,
                 "prefix_len": opts.prefix_len, "prefix_caching": not opts.no_prefix_caching,
                 "instance_count": opts.instance_count or 1,
                 "seed": opts.seed, "repeat": opts.repeat, "prompts": {str(c): prompts_for(c, opts) for c in levels},
                 "client": "vllm.benchmarks.serve", "dataset": bench_surfaces.dataset_name(surface)},
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="entry of model_repository/ to serve (images: the tiny VLM)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=None)
    parser.add_argument("--input-len", type=int, default=None)
    parser.add_argument("--output-len", type=int, default=None)
    parser.add_argument("--num-prompts", type=int, default=None, help="per level (default: 4 rounds, at least 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix-len", type=int, default=0, help="one shared random prefix of this many tokens, "
                        "before --input-len more, in every prompt (vLLM's --random-prefix-len)")  # fmt: skip
    parser.add_argument("--no-prefix-caching", action="store_true", help="both servers without prefix caching")
    parser.add_argument("--instance-count", type=int, default=None, metavar="N", help="our stack: N Triton "
                        "instances of the model (instance_group count; one engine and KV cache each)")  # fmt: skip
    parser.add_argument("--endpoint", choices=ENDPOINTS, default="completions", help="the OpenAI API to drive")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=None)
    parser.add_argument("--repeat", type=int, default=1, help="runs per level; the tables give each figure's median")
    parser.add_argument("--quick", action="store_true", help="tiny loads, for a smoke run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true", help="show the load generator's own report")
    opts = parser.parse_args(argv)
    plain = opts.endpoint == "completions"
    opts.systems = opts.systems or (["vllm", "ours", "triton"] if plain else ["vllm", "ours"])
    if not plain and {"triton", "hf"} & set(opts.systems):
        parser.error(f"--endpoint {opts.endpoint}: triton and hf drive Triton's own protocol, which has no such API")
    opts.concurrency = opts.concurrency or ([1, 4] if opts.quick else [1, 16, 64])
    full_in, full_out = ENDPOINTS[opts.endpoint].lengths
    opts.input_len = opts.input_len or (32 if opts.quick else full_in)
    opts.output_len = opts.output_len or (8 if opts.quick else full_out)
    opts.out = opts.out or ROOT / "results" / "bench" / time.strftime("%Y%m%d-%H%M%S")

    report = bench(opts)
    table = markdown(report)
    if hops := bench_hops.markdown(report["results"].get("ours", {})):
        table += "\nWhere the TTFT of ours goes, mean per request (tools/bench_hops.py):\n\n" + hops
    (opts.out / "bench.json").write_text(json.dumps(report, indent=2))
    (opts.out / "bench.md").write_text(table)
    plot(report, opts.out / "bench.png")
    print(table)
    console.print(f"wrote {opts.out}/bench.json, bench.md, bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
