"""What each engine measures reaches `EngineStats`: vLLM's own statistics through its stat
logger interface, the transformers engine's load from its batch."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from triton_llm.generation import stats
from triton_llm.generation.engines.hf.engine import HuggingFaceEngine
from triton_llm.settings import HfGenerationSettings, parse_settings
from triton_llm.tasks import Task


def test_the_buckets_are_vllms():
    from vllm.v1.metrics import buckets

    assert stats.TIME_TO_FIRST_TOKEN_BUCKETS == buckets.TIME_TO_FIRST_TOKEN_BUCKETS
    assert stats.INTER_TOKEN_LATENCY_BUCKETS == buckets.INTER_TOKEN_LATENCY_BUCKETS
    assert stats.REQUEST_LATENCY_BUCKETS == buckets.REQUEST_LATENCY_BUCKETS


def test_vllms_statistics_fill_the_load_and_the_engine_timings():
    from vllm.v1.engine import FinishReason
    from vllm.v1.metrics.stats import FinishedRequestStats, IterationStats, SchedulerStats

    from triton_llm.generation.engines.vllm.stats import StatLoggers

    s = stats.EngineStats()
    loggers = StatLoggers(s)
    logger = loggers(vllm_config=None, engine_index=0)  # as AsyncLLM's StatLoggerManager calls it
    assert loggers.load() == stats.Load()
    iteration = IterationStats()
    iteration.time_to_first_tokens_iter = [0.05]
    iteration.inter_token_latencies_iter = [0.02, 0.03]
    iteration.finished_requests = [FinishedRequestStats(FinishReason.LENGTH, queued_time=0.4)]
    scheduler = SchedulerStats(num_running_reqs=3, num_waiting_reqs=2, num_skipped_waiting_reqs=1, kv_cache_usage=0.5)
    logger.record(scheduler, iteration, engine_idx=0)
    logger.record(None, None)  # a step with nothing to say changes nothing
    assert loggers.load() == stats.Load(running=3, waiting=3, kv_cache_usage=0.5)
    _, histograms = s.snapshot()
    assert {name: cumulative[-1] for name, (cumulative, _) in histograms.items()} == {
        stats.TTFT: 1,
        stats.ITL: 2,
        stats.QUEUE: 1,
        stats.E2E: 0,
    }
    assert histograms[stats.QUEUE][1] == pytest.approx(0.4)


def test_the_transformers_engines_kv_usage_is_its_cache_over_the_most_it_can_hold():
    engine = HuggingFaceEngine(parse_settings(HfGenerationSettings, {"model": "m"}), Task.TEXT_GENERATION, "cpu")
    assert engine.load() == stats.Load()  # not loaded yet
    engine.max_model_len = 100
    engine._batcher = SimpleNamespace(
        active=[object(), object()], max_num_seqs=4, num_unfinished=lambda: 5, cache_tokens=lambda: 2 * 50
    )
    assert engine.load() == stats.Load(running=2, waiting=3, kv_cache_usage=0.25)


def test_vllms_prefix_cache_lora_and_cache_config_reach_the_stats_as_vllm_names_them():
    from vllm.v1.metrics.stats import PrefixCacheStats, SchedulerStats

    from triton_llm.generation.engines.vllm.stats import StatLoggers

    s = stats.EngineStats()
    config = SimpleNamespace(lora_config=SimpleNamespace(max_loras=4),
                             cache_config=SimpleNamespace(block_size=16, num_gpu_blocks=1024))  # fmt: skip
    logger = StatLoggers(s)(vllm_config=config, engine_index=0)
    logger.log_engine_initialized()
    for queries, hits in ((10, 0), (12, 8)):  # per step, as vLLM's scheduler reports them
        step = SchedulerStats(prefix_cache_stats=PrefixCacheStats(requests=1, queries=queries, hits=hits))
        step.running_lora_adapters, step.waiting_lora_adapters = {"a": 1, "b": 2}, {"c": 1}
        logger.record(step, None)
    counters, _ = s.snapshot()
    assert counters[(stats.PREFIX_QUERIES, "")] == 22 and counters[(stats.PREFIX_HITS, "")] == 8
    infos = s.info_snapshot()
    labels, when = infos[stats.LORA_INFO]
    assert dict(labels) == {"max_lora": "4", "running_lora_adapters": "a,b", "waiting_lora_adapters": "c"}
    assert when == pytest.approx(time.time(), abs=60)  # vLLM's set_to_current_time
    assert infos[stats.CACHE_CONFIG_INFO] == ((("block_size", "16"), ("num_gpu_blocks", "1024")), 1.0)

    without = stats.EngineStats()  # LoRA off: no lora_requests_info at all, as in vLLM
    StatLoggers(without)(vllm_config=SimpleNamespace(lora_config=None), engine_index=0).record(SchedulerStats(), None)
    assert stats.LORA_INFO not in without.info_snapshot()
