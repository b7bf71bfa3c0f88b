"""A bounded soak of the whole stack (not a test): mixed load for --duration seconds, then
the figures an operator asks about: RSS per process at start and end, answers by status,
and requests the engines still hold at the end (must be 0).

    .venv/bin/python -m tools.soak                       # starts `serve` on model_repository/
    .venv/bin/python -m tools.soak --duration 60 --concurrency 4
    .venv/bin/python -m tools.soak --url http://127.0.0.1:9000 --metrics-url http://127.0.0.1:8002/metrics \
        --serve-pid $(pgrep -f "triton-llm serve")

The load: chat and completions, streamed and not, and embeddings; one request in five is
abandoned by its client (a stream closed after a few chunks, or a non-streamed request
given up after a short timeout), which must cancel its engine work. Writes
results/soak/<time>/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from triton_llm.cli.serve import free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["Tell me about the sea.", "Write a short poem about autumn.", "def quicksort(xs):", "The history of Rome"]
KINDS = ["chat", "chat-stream", "completion", "completion-stream", "embeddings"]


async def one(client: httpx.AsyncClient, prefix: str, kind: str, model: str, counts: collections.Counter) -> None:
    abandon = random.random() < 0.2
    max_tokens = random.choice([16, 64, 256])
    if kind == "embeddings":
        body = {"model": "minilm", "input": random.sample(PROMPTS, k=random.randint(1, 4))}
        path = "/embeddings"
    elif kind.startswith("chat"):
        body = {"model": model, "messages": [{"role": "user", "content": random.choice(PROMPTS)}],
                "max_tokens": max_tokens}  # fmt: skip
        path = "/chat/completions"
    else:
        body = {"model": model, "prompt": random.choice(PROMPTS), "max_tokens": max_tokens}
        path = "/completions"
    stream = kind.endswith("stream")
    body["stream"] = stream if kind != "embeddings" else None
    body = {k: v for k, v in body.items() if v is not None}
    try:
        if stream:
            async with client.stream("POST", prefix + path, json=body, timeout=300) as r:
                chunks = 0
                async for line in r.aiter_lines():
                    if line.startswith("data: ") and '"error"' in line:
                        counts["stream error event"] += 1
                    chunks += 1
                    if abandon and chunks >= 3:
                        counts["abandoned"] += 1
                        return
                counts[str(r.status_code)] += 1
        else:
            r = await client.post(prefix + path, json=body, timeout=0.5 if abandon else 300)
            counts[str(r.status_code)] += 1
    except httpx.TimeoutException:
        counts["abandoned" if abandon else "timeout"] += 1
    except httpx.HTTPError as exc:
        counts[f"transport error: {type(exc).__name__}"] += 1


async def load(url: str, prefix: str, duration: float, concurrency: int) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    deadline = time.monotonic() + duration

    async def worker(i: int) -> None:
        async with httpx.AsyncClient(base_url=url) as client:
            while time.monotonic() < deadline:
                kind = random.choice(KINDS)
                model = "smollm2" if i % 2 == 0 else "smollm2-hf"
                await one(client, prefix, kind, model, counts)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return counts


def rss(root: int | None) -> dict[str, float]:
    """RSS in MiB of every process under `root`, named by what it is (a stub by its model)."""
    out: dict[str, float] = {}
    if root is None:
        return out
    for p in psutil.Process(root).children(recursive=True):
        try:
            cmd = p.cmdline()
            name = p.name()
            if "triton_python" in name and len(cmd) > 1:
                name = f"stub {Path(cmd[1]).parent.parent.name}"
            elif "openai_frontend" in " ".join(cmd):
                name = "frontend"
            key = name
            n = 2
            while key in out:
                key, n = f"{name} #{n}", n + 1
            out[key] = round(p.memory_info().rss / 2**20, 1)
        except psutil.Error:
            pass
    return out


def engine_requests(metrics_url: str) -> dict[str, float]:
    text = httpx.get(metrics_url, timeout=10).text
    held: dict[str, float] = collections.defaultdict(float)
    for line in text.splitlines():
        if line.startswith(("vllm:num_requests_running{", "vllm:num_requests_waiting{")):
            labels, value = line.rsplit(" ", 1)
            model = labels.split('model_name="', 1)[1].split('"', 1)[0]
            held[model] += float(value)
    return dict(held)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--url", help="a running frontend (default: start serve on model_repository/)")
    parser.add_argument("--metrics-url", help="Triton's metrics (with --url)")
    parser.add_argument("--serve-pid", type=int, help="with --url: the serve process whose tree's RSS to report")
    parser.add_argument("--prefix", default="/openai/v1")
    args = parser.parse_args(argv)

    proc = None
    if args.url is None:
        ports = [free_port() for _ in range(4)]
        cmd = [sys.executable, "-m", "triton_llm.cli.serve", f"--http-port={ports[0]}", f"--grpc-port={ports[1]}",
               f"--metrics-port={ports[2]}", f"--frontend-port={ports[3]}"]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        args.url = f"http://127.0.0.1:{ports[3]}"
        args.metrics_url = f"http://127.0.0.1:{ports[2]}/metrics"
        if not wait_ready(proc, f"{args.url}/health/ready", 600):
            print("soak: the stack did not become ready", file=sys.stderr)
            proc.kill()
            return 1
    root = proc.pid if proc else args.serve_pid
    try:
        asyncio.run(load(args.url, args.prefix, 20, 2))  # warm up: first requests compile and allocate
        start = rss(root)
        started = time.monotonic()
        counts = asyncio.run(load(args.url, args.prefix, args.duration, args.concurrency))
        elapsed = time.monotonic() - started
        time.sleep(5)  # abandoned requests' cancellations reach the engines within a second
        held = engine_requests(args.metrics_url)
        end = rss(root)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)

    print(f"\nsoak: {elapsed:.0f} s, concurrency {args.concurrency}, CPU: {_cpu()}")
    print("\n| process | RSS start (MiB) | RSS end (MiB) | change |\n|---|---|---|---|")
    for name in sorted(set(start) | set(end)):
        a, b = start.get(name), end.get(name)
        change = f"{b - a:+.0f}" if a is not None and b is not None else "-"
        print(f"| {name} | {a if a is not None else '-'} | {b if b is not None else '-'} | {change} |")
    print("\n| outcome | count |\n|---|---|")
    for outcome, n in sorted(counts.items()):
        print(f"| {outcome} | {n} |")
    print(f"\nengine requests held at the end: {held} (must be 0)")
    out = ROOT / "results" / "soak" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    report = {"seconds": elapsed, "concurrency": args.concurrency, "cpu": _cpu(), "rss_start_mib": start,
              "rss_end_mib": end, "outcomes": dict(counts), "engine_requests_at_end": held}  # fmt: skip
    (out / "soak.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'soak.json'}")
    return 0 if not any(held.values()) else 1


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
