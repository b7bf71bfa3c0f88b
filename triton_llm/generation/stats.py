"""A generation model's engine metrics, with vLLM's names, aggregated in the stub's process.

Both engines and the runner record here, on whichever thread measures (the event loop, the
transformers batcher's thread); nothing here talks to Triton. `triton_llm.metrics` publishes
the totals on Triton's metrics port from the runner's 0.1 s poll, one update per series that
changed: a Triton metric update is an IPC round trip, too slow to make once per token.

Who measures what:
  - the runner, from the chunks it sends (the same for every engine): prompt and generation
    tokens, request success by finish reason, end-to-end latency, and the outcomes that are
    not a success (`llm_requests_failed_total`);
  - the engine, which sees every token even when the client asked for one final response:
    time to first token, inter-token latency, queue time, and its load (`Load`).
This module holds no Triton import: tests and the dashboard's check read `FAMILIES`.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from triton_llm.generation.types import GenerationChunk

# vLLM 0.32's default buckets (vllm/v1/metrics/buckets.py), so that dashboards and alerts
# written for vLLM read the same boundaries. Copied: the transformers engine runs without vLLM.
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
TIME_TO_FIRST_TOKEN_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
INTER_TOKEN_LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0,
)  # fmt: skip

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
TTFT = "vllm:time_to_first_token_seconds"
ITL = "vllm:inter_token_latency_seconds"
E2E = "vllm:e2e_request_latency_seconds"
QUEUE = "vllm:request_queue_time_seconds"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
SUCCESS = "vllm:request_success_total"
FAILED = "llm_requests_failed_total"
# vLLM V1's prefix-cache counters (its Counter "vllm:prefix_cache_queries" is exposed with _total).
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
# Gauges whose labels are the information, as vLLM's: exported only by an engine that has the thing.
LORA_INFO = "vllm:lora_requests_info"  # max_lora, running/waiting_lora_adapters; value: when (Unix time)
CACHE_CONFIG_INFO = "vllm:cache_config_info"  # block_size, num_gpu_blocks; value 1
INFO_HELP = {
    LORA_INFO: "Running stats on lora requests.",
    CACHE_CONFIG_INFO: "Information of the LLMEngine CacheConfig",
}

# vLLM's FinishReason values; its server shows every one from the start, at 0.
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
FAILURES = ("invalid", "cancelled", "error", "rejected")  # rejected: over max_concurrent_requests


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "gauge", "counter" or "histogram"
    help: str
    label: str | None = None  # the one label of ours beside model_name and version
    values: tuple[str, ...] = ()  # its values, shown at 0 from the start
    buckets: tuple[float, ...] = ()


# Everything a generation model exports (descriptions are vLLM's where the name is).
FAMILIES = (
    Family(RUNNING, "gauge", "Number of requests in model execution batches."),
    Family(WAITING, "gauge", "Number of requests waiting to be processed."),
    Family(KV_CACHE_USAGE, "gauge", "KV-cache usage. 1 means 100 percent usage."),
    Family(PROMPT_TOKENS, "counter", "Number of prefill tokens processed."),
    Family(GENERATION_TOKENS, "counter", "Number of generation tokens processed."),
    Family(SUCCESS, "counter", "Count of successfully processed requests.", "finished_reason", FINISH_REASONS),
    Family(FAILED, "counter", "Requests that ended without a finish reason: invalid, cancelled, error, rejected.",
           "outcome", FAILURES),
    Family(PREFIX_QUERIES, "counter", "Prefix cache queries, in terms of number of queried tokens."),
    Family(PREFIX_HITS, "counter", "Prefix cache hits, in terms of number of cached tokens."),
    Family(TTFT, "histogram", "Histogram of time to first token in seconds.", buckets=TIME_TO_FIRST_TOKEN_BUCKETS),
    Family(ITL, "histogram", "Histogram of inter-token latency in seconds.", buckets=INTER_TOKEN_LATENCY_BUCKETS),
    Family(E2E, "histogram", "Histogram of e2e request latency in seconds.", buckets=REQUEST_LATENCY_BUCKETS),
    Family(QUEUE, "histogram", "Histogram of time spent in WAITING phase for request.",
           buckets=REQUEST_LATENCY_BUCKETS),
)  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def series_names() -> set[str]:
    """Every metric name on Triton's page for a generation model (a histogram is three)."""
    names = set()
    for f in FAMILIES:
        names |= {f.name + s for s in HISTOGRAM_SUFFIXES} if f.kind == "histogram" else {f.name}
    return names


@dataclass(frozen=True)
class Load:
    """An engine's state now: requests in its batch, requests queued, share of its KV cache in use (0..1)."""

    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0


class Histogram:
    """Counts per bucket (not cumulative: each value lands in one) and a sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # Prometheus' `le`: a value equal to a bound is in that bound's bucket.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[int]:
        """Prometheus' `_bucket` series, one per bound then +Inf (the count)."""
        total, out = 0, []
        for c in self.counts:
            total += c
            out.append(total)
        return out


class EngineStats:
    """Totals since the model started; any thread may record, `snapshot` reads them all at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, str], float] = {}  # (name, label value or "") -> total
        self.histograms = {f.name: Histogram(f.buckets) for f in FAMILIES if f.kind == "histogram"}
        self.version = 0  # bumped on every change: an idle poll publishes nothing
        self.infos: dict[str, tuple[tuple[tuple[str, str], ...], float]] = {}  # INFO_HELP's -> (labels, value)

    def info(self, name: str, labels: dict[str, str], value: float) -> None:
        """An info gauge's labels now, and its value (each new label set becomes a series of its own)."""
        with self._lock:
            self.infos[name] = (tuple(sorted(labels.items())), value)

    def add(self, name: str, value: float, label: str = "") -> None:
        with self._lock:
            self._add(name, value, label)

    def observe(self, name: str, values: Iterable[float]) -> None:
        histogram = self.histograms[name]
        with self._lock:
            for value in values:
                histogram.observe(value)
                self.version += 1

    def chunk(self, chunk: GenerationChunk, first: bool, n: int) -> None:
        """What the runner counts in each chunk it sends."""
        with self._lock:
            if first:  # every choice is prefilled: vLLM counts the prompt once per choice too
                self._add(PROMPT_TOKENS, chunk.num_input_tokens * n)
            self._add(GENERATION_TOKENS, sum(c.num_tokens for c in chunk.choices))
            for c in chunk.choices:
                if c.finish_reason is not None:
                    self._add(SUCCESS, 1, c.finish_reason)

    def _add(self, name: str, value: float, label: str = "") -> None:
        if value:
            key = (name, label)
            self.counters[key] = self.counters.get(key, 0) + value
            self.version += 1

    def snapshot(self) -> tuple[dict[tuple[str, str], float], dict[str, tuple[list[int], float]]]:
        with self._lock:
            return dict(self.counters), {k: (h.cumulative(), h.sum) for k, h in self.histograms.items()}

    def info_snapshot(self) -> dict[str, tuple[tuple[tuple[str, str], ...], float]]:
        with self._lock:
            return dict(self.infos)
