"""What each engine measures reaches `EngineStats`: vLLM's own statistics through its stat
logger interface, the transformers engine's load from its batch."""

from __future__ import annotations

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
