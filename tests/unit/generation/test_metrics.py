"""Engine metrics are aggregated where they are measured and published as increments, one
Triton call per series that changed (tests/unit/fakes/pb_utils.py stands in for Triton)."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.fakes import pb_utils
from tests.unit.fakes.engine import FakeEngine, Script
from tests.unit.fakes.harness import install, start_generation
from triton_llm.generation import stats
from triton_llm.generation.engines.hf.sampling import HfSampling
from triton_llm.generation.engines.hf.scheduler import Batcher, Sequence
from triton_llm.generation.types import ChoiceDelta, GenerationChunk


@pytest.fixture
def metrics_module(monkeypatch, tmp_path):
    return install(monkeypatch, tmp_path, "triton_llm.metrics")


@pytest.fixture
def calls(monkeypatch) -> list[tuple]:
    """Every update sent to (fake) Triton: (op, family, labels, value)."""
    sent: list[tuple] = []
    increment, set_ = pb_utils._Metric.increment, pb_utils._Metric.set

    def record(op, original):
        def call(self, value):
            family = next(f.name for f in pb_utils.MetricFamily.families.values() if self in f.metrics)
            sent.append((op, family, dict(self.labels), value))
            original(self, value)

        return call

    monkeypatch.setattr(pb_utils._Metric, "increment", record("increment", increment))
    monkeypatch.setattr(pb_utils._Metric, "set", record("set", set_))
    return sent


def value(family: str, **labels: str) -> float:
    [metric] = [m for m in pb_utils.MetricFamily.families[family].metrics if labels.items() <= m.labels.items()]
    return metric.value


def test_a_value_on_a_bound_is_in_that_bucket_and_buckets_are_cumulative():
    h = stats.Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 3.0):
        h.observe(v)
    assert h.counts == [2, 2, 1]
    assert h.cumulative() == [2, 4, 5]  # le=0.1, le=1.0, le=+Inf (the count)
    assert h.sum == pytest.approx(4.65)


def test_chunks_count_the_prompt_once_per_choice_tokens_and_finish_reasons():
    s = stats.EngineStats()
    first = GenerationChunk("p", 5, [ChoiceDelta(0, "a", 2), ChoiceDelta(1, "b", 1)], finished=False)
    last = GenerationChunk("p", 5, [ChoiceDelta(0, "", 1, "length"), ChoiceDelta(1, "", 1, "stop")], finished=True)
    s.chunk(first, first=True, n=2)
    s.chunk(last, first=False, n=2)
    counters, _ = s.snapshot()
    assert counters == {
        (stats.PROMPT_TOKENS, ""): 10,
        (stats.GENERATION_TOKENS, ""): 5,
        (stats.SUCCESS, "length"): 1,
        (stats.SUCCESS, "stop"): 1,
    }


def test_every_series_exists_at_zero_from_the_start_with_vllms_label(metrics_module):
    metrics_module.ModelMetrics("m", "1", stats.EngineStats())
    families = pb_utils.MetricFamily.families
    assert set(families) == stats.series_names()
    assert value(stats.SUCCESS, finished_reason="abort") == 0
    assert value(stats.TTFT + "_bucket", le="0.001") == 0 and value(stats.TTFT + "_bucket", le="+Inf") == 0
    assert all(
        m.labels["model_name"] == "m" and m.labels["version"] == "1" for f in families.values() for m in f.metrics
    )
    assert len(families[stats.ITL + "_bucket"].metrics) == len(stats.INTER_TOKEN_LATENCY_BUCKETS) + 1


def test_a_flush_sends_increments_only_for_the_series_that_changed(metrics_module, calls, monkeypatch):
    monkeypatch.setattr(metrics_module, "HISTOGRAM_FLUSH_S", 0.0)
    s = stats.EngineStats()
    m = metrics_module.ModelMetrics("m", "1", s)
    m.publish(stats.Load())
    calls.clear()
    s.add(stats.GENERATION_TOKENS, 7)
    s.observe(stats.TTFT, [0.3, 0.07])
    m.publish(stats.Load(running=2, waiting=1, kv_cache_usage=0.25))
    sent = {(family, labels.get("le")): (op, v) for op, family, labels, v in calls}
    assert sent[(stats.GENERATION_TOKENS, None)] == ("increment", 7)
    # Cumulative: 0.07 is in le=0.08 and above, 0.3 in le=0.5 and above.
    assert sent[(stats.TTFT + "_bucket", "0.08")] == ("increment", 1)
    assert sent[(stats.TTFT + "_bucket", "0.5")] == ("increment", 2)
    assert (stats.TTFT + "_bucket", "0.06") not in sent
    assert sent[(stats.TTFT + "_count", None)] == ("increment", 2)
    assert sent[(stats.TTFT + "_sum", None)][1] == pytest.approx(0.37)
    assert not any(family.startswith((stats.ITL, stats.E2E, stats.PROMPT_TOKENS)) for family, _ in sent)
    assert sent[(stats.RUNNING, None)] == ("set", 2) and sent[(stats.KV_CACHE_USAGE, None)] == ("set", 0.25)
    assert value(stats.TTFT + "_bucket", le="+Inf") == value(stats.TTFT + "_count") == 2

    calls.clear()
    m.publish(stats.Load(running=2, waiting=1, kv_cache_usage=0.25))
    assert calls == []  # nothing changed: no Triton call at all

    s.add(stats.GENERATION_TOKENS, 3)
    m.publish(stats.Load(running=1, waiting=1, kv_cache_usage=0.25))
    assert calls == [
        ("increment", stats.GENERATION_TOKENS, {"model_name": "m", "version": "1", "engine": "0"}, 3),
        ("set", stats.RUNNING, {"model_name": "m", "version": "1", "engine": "0"}, 1),
    ]
    assert value(stats.GENERATION_TOKENS) == 10


def test_histograms_are_flushed_at_most_once_a_second_and_then_catch_up(metrics_module, calls, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(metrics_module.time, "monotonic", lambda: clock[0])
    s = stats.EngineStats()
    m = metrics_module.ModelMetrics("m", "1", s)
    s.observe(stats.ITL, [0.02])
    m.publish(stats.Load())
    assert value(stats.ITL + "_count") == 1
    s.observe(stats.ITL, [0.02] * 50)
    s.add(stats.GENERATION_TOKENS, 50)
    clock[0] += 0.1
    m.publish(stats.Load())
    assert value(stats.ITL + "_count") == 1 and value(stats.GENERATION_TOKENS) == 50  # counters go at once
    clock[0] += metrics_module.HISTOGRAM_FLUSH_S
    calls.clear()
    m.publish(stats.Load())
    assert value(stats.ITL + "_count") == 51
    # 50 values in one bucket: one increment per changed series (19 bounds, +Inf, sum, count).
    assert len(calls) == len(stats.INTER_TOKEN_LATENCY_BUCKETS) - 1 + 3


def test_a_new_label_value_gets_its_series_and_success_is_not_an_outcome(metrics_module):
    s = stats.EngineStats()
    m = metrics_module.ModelMetrics("m", "1", s)
    m.finished("success")
    m.finished("cancelled")
    s.add(stats.SUCCESS, 1, "something_new")
    m.publish(stats.Load())
    assert value(stats.FAILED, outcome="cancelled") == 1 and value(stats.FAILED, outcome="error") == 0
    assert value(stats.SUCCESS, finished_reason="something_new") == 1


def test_an_info_gauge_gets_a_series_per_label_set_and_keeps_the_old_ones(metrics_module, calls):
    s = stats.EngineStats()
    m = metrics_module.ModelMetrics("m", "1", s)
    m.publish(stats.Load())
    assert stats.LORA_INFO not in pb_utils.MetricFamily.families  # only an engine with LoRA has one
    running = {"max_lora": "4", "running_lora_adapters": "a", "waiting_lora_adapters": ""}
    s.info(stats.LORA_INFO, running, 100.0)
    m.publish(stats.Load())
    s.info(stats.LORA_INFO, {**running, "running_lora_adapters": ""}, 101.0)
    m.publish(stats.Load())
    calls.clear()
    m.publish(stats.Load())
    assert calls == []  # unchanged: no Triton call
    s.info(stats.LORA_INFO, running, 102.0)
    m.publish(stats.Load())
    assert value(stats.LORA_INFO, running_lora_adapters="a") == 102.0  # the EPP reads the latest
    assert value(stats.LORA_INFO, running_lora_adapters="") == 101.0
    assert len(pb_utils.MetricFamily.families[stats.LORA_INFO].metrics) == 2
    assert pb_utils.MetricFamily.families[stats.LORA_INFO].metrics[0].labels == {"model_name": "m", "version": "1",
                                                                                 "engine": "0", **running}  # fmt: skip


def test_close_drops_every_metric_then_its_families_and_publishes_nothing_after(metrics_module, calls):
    import gc
    import weakref

    s = stats.EngineStats()
    m = metrics_module.ModelMetrics("m", "1", s)
    family = weakref.ref(pb_utils.MetricFamily.families.pop(stats.RUNNING))
    m.close()
    gc.collect()
    assert family() is None  # released in finalize, not at the interpreter's exit (a segfault there)
    m.publish(stats.Load(running=1))
    assert calls == []


def test_metrics_disabled_on_the_server_publish_nothing(metrics_module, monkeypatch):
    def refuse(*args, **kwargs):
        raise pb_utils.TritonModelException("metrics not supported")

    monkeypatch.setattr(pb_utils.MetricFamily, "__init__", refuse)
    m = metrics_module.ModelMetrics("m", "1", stats.EngineStats())
    assert not m.enabled
    m.publish(stats.Load(running=3))


def test_the_runner_publishes_what_its_requests_did(monkeypatch, tmp_path):
    served = start_generation(monkeypatch, tmp_path, FakeEngine(default=Script(chunks=3)))
    requests = [served.request("hello", stream=True), served.request("again")]
    served.execute(*requests)
    served.wait()
    served.engine.stats.observe(stats.TTFT, [0.2])  # what an engine measures

    def published() -> bool:
        return value(stats.GENERATION_TOKENS) == 6 and value(stats.TTFT + "_count") == 1

    assert _eventually(published)
    assert value(stats.PROMPT_TOKENS) == 4  # the fake's prompts are 2 tokens
    assert value(stats.SUCCESS, finished_reason="stop") == 2
    assert value(stats.E2E + "_count") == 2
    served.check()


def test_a_request_shed_at_the_bound_counts_as_rejected(monkeypatch, tmp_path):
    served = start_generation(monkeypatch, tmp_path, FakeEngine(default=Script(chunks=1, hang=True)))
    served.model.admission.limit = 1
    held, refused = served.request("held"), served.request("refused")
    served.execute(held)
    assert served.engine.hanging.acquire(timeout=5)
    served.execute(refused)
    served.wait(refused)
    served.check()
    assert served.outcomes() == {"rejected": 1, "cancelled": 1}  # the held one, at finalize


class _Echo(Batcher):
    """Every step gives each row token 7: the scheduler's bookkeeping without a model."""

    def join(self, joining, packed=False):
        self.active += joining
        return [7] * len(joining)

    def step(self):
        return [7] * len(self.active)


def test_the_transformers_scheduler_times_every_token_and_each_wait():
    async def run() -> stats.EngineStats:
        batcher = _Echo(lambda: object(), max_num_seqs=1)
        done: asyncio.Queue = asyncio.Queue()
        for i in range(2):  # one row: the second waits for the first
            seq = Sequence(f"r{i}", [1, 2, 3], 4, [], HfSampling(temperature=0.0), stream=False)
            batcher.submit(seq, lambda ids, finished, error: finished and done.put_nowait(ids))
        assert [await asyncio.wait_for(done.get(), 10) for _ in range(2)] == [[7] * 4] * 2
        batcher.stop()
        assert batcher.cache_tokens() == 0 and batcher.num_unfinished() == 0
        return batcher.stats

    _, histograms = asyncio.run(run()).snapshot()
    count = {name: cumulative[-1] for name, (cumulative, _) in histograms.items()}
    # Not streamed, yet every token is timed: 1 first token and 3 gaps per request.
    assert count == {stats.TTFT: 2, stats.ITL: 6, stats.QUEUE: 2, stats.E2E: 0}


def _eventually(predicate, timeout: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_each_model_instance_is_its_own_engine(metrics_module):
    """Two instances of one model (make-repo --instance-count 2) keep a series each, as vLLM's data
    parallel engines do, instead of two stubs setting one gauge."""
    label = metrics_module.engine_label
    assert [label("m", f"m_0_{i}") for i in range(3)] == ["0", "1", "2"]
    assert label("m_0", "m_0_0_1") == "1" and label("m", "m_1_0") == "1_0" and label("m", "") == "0"
    for i in range(2):
        metrics_module.ModelMetrics("m", "1", stats.EngineStats(), engine=str(i)).publish(stats.Load(running=i + 1))
    assert value(stats.RUNNING, engine="0") == 1 and value(stats.RUNNING, engine="1") == 2
