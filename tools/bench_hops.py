"""Where a request's time to first token goes, hop by hop, from the metrics each hop keeps.

Each hop of our stack already times its own part of every request and publishes it on the
frontend's `/metrics` page (which appends Triton's): the frontend from the handler to the
first chunk (`openai_time_to_first_token_seconds`), Triton from receiving the request to
handing it to the model's stub (`nv_inference_queue_duration_us`: its queue and the IPC),
and the engine from its arrival to the first token (`vllm:time_to_first_token_seconds`), of
which waiting for a batch slot (`vllm:request_queue_time_seconds`). Reading the page before
and after a load gives, per hop, the mean over the load's requests; the client's mean TTFT
closes the chain. What is left between two measured points is named for what runs there.

Means, not per-request timestamps: every figure comes from one page read twice, so tracing
costs nothing while the load runs, and the sums are exact. Warm-up requests are counted in
the hops' means too (the load generator's own figures leave them out).
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# The model's stub publishes its engine's figures every 0.1 s (triton_llm.metrics).
PUBLISHED_S = 1.0
# (prometheus family, how to read one of its values in ms)
FAMILIES = {
    "frontend": "openai_time_to_first_token_seconds",
    "triton_queue": "nv_inference_queue_duration_us",
    "triton_requests": "nv_inference_request_success",
    "engine_ttft": "vllm:time_to_first_token_seconds",
    "engine_queue": "vllm:request_queue_time_seconds",
}
HOPS = (
    ("client", "HTTP in and out, request parsing, routing (client TTFT - frontend)"),
    ("triton", "gRPC to Triton, Triton's queue and the IPC to the stub"),
    ("stub", "the stub before the engine: parsing, chat template, tokenisation; the first token back"),
    ("engine_queue", "the engine's queue (waiting for a batch slot)"),
    ("engine_first_step", "the engine's prefill and first step"),
)


def scrape(url: str, model: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each family for `model` (the frontend's families: all endpoints)."""
    time.sleep(PUBLISHED_S)  # what the last requests recorded is on the page
    return parse(urllib.request.urlopen(url, timeout=10).read().decode(), model)


def parse(text: str, model: str) -> dict[str, tuple[float, float]]:
    totals: dict[str, list[float]] = {key: [0.0, 0.0] for key in FAMILIES}
    names = {name: key for key, name in FAMILIES.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removesuffix("_total")  # the parser adds it to counters; Triton's histograms are two
            base = name.removesuffix("_sum").removesuffix("_count")
            key = names.get(base) or names.get(name)
            labels = sample.labels
            if key is None or labels.get("model", labels.get("model_name", model)) != model:
                continue
            if name.endswith("_sum"):
                totals[key][0] += sample.value
            elif name.endswith("_count"):
                totals[key][1] += sample.value
            elif key in ("triton_queue", "triton_requests"):  # Triton's counters: a total and no count
                totals[key][0] += sample.value
    return {key: (s, c) for key, (s, c) in totals.items()}


def breakdown(before: dict, after: dict, client_mean_ttft_ms: float) -> dict[str, float]:
    """Mean ms per request in each hop over the load between the two scrapes."""

    def mean_ms(key: str, scale: float = 1000.0) -> float:
        total, count = (after[key][i] - before[key][i] for i in (0, 1))
        return total / count * scale if count else float("nan")

    requests = after["triton_requests"][0] - before["triton_requests"][0]
    triton = (after["triton_queue"][0] - before["triton_queue"][0]) / 1000 / requests if requests else float("nan")
    frontend, engine_ttft, engine_queue = mean_ms("frontend"), mean_ms("engine_ttft"), mean_ms("engine_queue")
    return {
        "client": client_mean_ttft_ms - frontend,
        "triton": triton,
        "stub": frontend - triton - engine_ttft,
        "engine_queue": engine_queue,
        "engine_first_step": engine_ttft - engine_queue,
        "total": client_mean_ttft_ms,
    }


def median_runs(runs: list[dict[str, Any]], keep: bool = True) -> dict[str, Any]:
    """Each figure's median over repeated runs of one level; the runs themselves are kept."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = median_runs([r[key] for r in runs], keep=False)
        elif isinstance(value, int | float):
            out[key] = statistics.median(r[key] for r in runs)
    if keep and len(runs) > 1:
        out["runs"] = runs
    return out


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The mean TTFT of each hop per concurrency level ("ours" only: the others have no hops)."""
    levels = [c for c, r in results.items() if "hops" in r]
    if not levels:
        return ""
    lines = ["| hop | " + " | ".join(f"c={c} mean ms" for c in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for key, label in (*HOPS, ("total", "client's mean TTFT")):
        lines.append(f"| {label} | " + " | ".join(f"{results[c]['hops'][key]:.1f}" for c in levels) + " |")
    return "\n".join(lines) + "\n"
