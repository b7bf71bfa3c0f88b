"""The head-to-head's report: a markdown table with each system's ratio to the first, and a plot."""

from __future__ import annotations

import json
from pathlib import Path

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


def _prefix(load: dict) -> str:
    """A shared prefix before the random input (`--prefix-len`), and whether the servers cached it."""
    if not load.get("prefix_len"):
        return "" if load.get("prefix_caching", True) else "prefix caching off, "
    return f"a shared {load['prefix_len']}-token prefix (prefix caching {'on' if load['prefix_caching'] else 'off'}) + "


def markdown(report: dict) -> str:
    """One column per system, then its ratio to the first one (vLLM's server when run)."""
    res = report["results"]
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, bf16 {'yes' if m['bf16'] else 'no'}; {m['date']}. "
        f"Load: {report['load'].get('endpoint', 'completions')}, "
        f"{_prefix(report['load'])}{report['load']['input_len']} in / {report['load']['output_len']} out tokens, "
        f"`vllm.benchmarks.serve` {report['load'].get('dataset', 'random')} dataset, seed {report['load']['seed']}. "
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
