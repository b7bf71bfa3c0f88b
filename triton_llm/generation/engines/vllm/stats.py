"""vLLM's own statistics into our `EngineStats`, the way vllm_backend takes them: a stat logger.

AsyncLLM calls `record` after each engine step, on its output handler, which runs on the
runner's event loop; it only aggregates (no Triton call). From vLLM we take what only the
engine knows: its scheduler's running and waiting requests and KV-cache usage, and its
time to first token, inter-token latency and queue time, measured in the engine for every
request, streamed or not. Token and finish-reason counts come from the runner, for every
engine alike.
"""

from __future__ import annotations

import time
from typing import Any

from vllm.v1.metrics.loggers import StatLoggerBase

from triton_llm.generation.engines.vllm.compat import waiting_requests
from triton_llm.generation.stats import (
    CACHE_CONFIG_INFO,
    ITL,
    LORA_INFO,
    PREFIX_HITS,
    PREFIX_QUERIES,
    QUEUE,
    TTFT,
    EngineStats,
    Load,
)


class VllmStatLogger(StatLoggerBase):
    def __init__(self, stats: EngineStats, vllm_config: Any, engine_index: int = 0):
        self.stats = stats
        self.vllm_config = vllm_config
        self.load = Load()  # replaced whole, so that another thread reads one consistent value
        lora_config = getattr(vllm_config, "lora_config", None)
        self.max_lora = None if lora_config is None else lora_config.max_loras  # None: LoRA off, no info

    def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0) -> None:
        if scheduler_stats is not None:
            waiting = waiting_requests(scheduler_stats)
            self.load = Load(scheduler_stats.num_running_reqs, waiting, scheduler_stats.kv_cache_usage)
            # Per step, in tokens; 0 with enable_prefix_caching off (vLLM's counters then stay 0 too).
            if (prefix := getattr(scheduler_stats, "prefix_cache_stats", None)) is not None:
                self.stats.add(PREFIX_QUERIES, prefix.queries)
                self.stats.add(PREFIX_HITS, prefix.hits)
            if self.max_lora is not None:  # as vLLM's PrometheusStatLogger sets it, every step
                adapters = {
                    "max_lora": str(self.max_lora),
                    "running_lora_adapters": ",".join(getattr(scheduler_stats, "running_lora_adapters", {})),
                    "waiting_lora_adapters": ",".join(getattr(scheduler_stats, "waiting_lora_adapters", {})),
                }
                self.stats.info(LORA_INFO, adapters, time.time())
        if iteration_stats is None:
            return
        if iteration_stats.time_to_first_tokens_iter:
            self.stats.observe(TTFT, iteration_stats.time_to_first_tokens_iter)
        if iteration_stats.inter_token_latencies_iter:
            self.stats.observe(ITL, iteration_stats.inter_token_latencies_iter)
        if iteration_stats.finished_requests:
            self.stats.observe(QUEUE, [r.queued_time for r in iteration_stats.finished_requests])

    def log_engine_initialized(self) -> None:
        # The two labels of vLLM's cache_config_info that llm-d's prefix-cache scorer reads.
        cache = getattr(self.vllm_config, "cache_config", None)
        if cache is not None and cache.num_gpu_blocks:
            blocks = {"block_size": str(cache.block_size), "num_gpu_blocks": str(cache.num_gpu_blocks)}
            self.stats.info(CACHE_CONFIG_INFO, blocks, 1.0)


class StatLoggers:
    """AsyncLLM's `stat_loggers` entry (a factory it calls once per engine core), and their sum."""

    def __init__(self, stats: EngineStats):
        self.stats = stats
        self.loggers: list[VllmStatLogger] = []

    def __call__(self, vllm_config: Any, engine_index: int = 0) -> VllmStatLogger:
        logger = VllmStatLogger(self.stats, vllm_config, engine_index)
        self.loggers.append(logger)
        return logger

    def load(self) -> Load:
        loads = [logger.load for logger in self.loggers]
        if not loads:
            return Load()
        return Load(
            sum(x.running for x in loads),
            sum(x.waiting for x in loads),
            sum(x.kv_cache_usage for x in loads) / len(loads),
        )
