"""A generation model's metrics on Triton's metrics port (:8002/metrics), with vLLM's names.

The families are `triton_llm.generation.stats.FAMILIES`, labelled `model_name` (vLLM's
label, which its Grafana dashboards filter on), `version` and `engine` (the model instance,
as vLLM labels each data-parallel engine: with `make-repo --instance-count N` each instance
has its own series, not one gauge overwritten by N stubs), and the info gauges an engine
reports (`stats.INFO_HELP`: vLLM's LoRA and cache-config info, which llm-d's endpoint picker
reads). `publish` is called from the runner's response thread every 0.1 s and makes one
Triton call per series that changed since the last one, never one per token or per request.

Histograms are published as Prometheus' text format spells them: counters
`<name>_bucket{le=...}` (cumulative), `<name>_sum` and `<name>_count`, which
`histogram_quantile()` reads as it reads any histogram. Triton 2.51's Python backend has
`MetricFamily.HISTOGRAM`, but its `observe` is one IPC round trip (about 20 us) per value,
and the inter-token latency has one value per token; here a flush costs at most the number
of buckets, whatever the traffic, and histograms are flushed at most once a second.
"""

from __future__ import annotations

import gc
import logging
import time

import triton_python_backend_utils as pb_utils

from triton_llm.generation.stats import (
    FAILED,
    FAMILIES,
    INFO_HELP,
    KV_CACHE_USAGE,
    RUNNING,
    WAITING,
    EngineStats,
    Load,
)

logger = logging.getLogger(__name__)

HISTOGRAM_FLUSH_S = 1.0
_GAUGES = {RUNNING: "running", WAITING: "waiting", KV_CACHE_USAGE: "kv_cache_usage"}  # name -> Load's field


class _Safe:
    """A metric whose failures are logged, never raised into the response thread."""

    def __init__(self, metric):
        self._metric = metric

    def set(self, value: float) -> None:
        try:
            self._metric.set(value)
        except Exception:
            logger.warning("could not set a metric", exc_info=True)

    def increment(self, value: float) -> None:
        try:
            self._metric.increment(value)
        except Exception:
            logger.warning("could not update a metric", exc_info=True)


def _le(bound: float) -> str:
    return repr(float(bound))  # as prometheus_client writes it: "0.5", "1.0"


def engine_label(model_name: str, instance_name: str) -> str:
    """The `engine` label of a Triton model instance: Triton names them `<model>_<group>_<index>`,
    so the one group's instances are "0", "1", ... (vLLM's engine indexes); any other group keeps
    "<group>_<index>"."""
    suffix = instance_name.removeprefix(f"{model_name}_")
    group, _, index = suffix.rpartition("_")
    if group == "0" and index.isdigit():
        return index
    return suffix or "0"


class ModelMetrics:
    def __init__(self, model_name: str, version: str, stats: EngineStats, engine: str = "0"):
        self.stats = stats
        self._labels = {"model_name": model_name, "version": version, "engine": engine}
        # A family must outlive its metrics, so we keep references to both.
        self._families: dict[str, tuple[object, str | None]] = {}  # series name -> (family, label name)
        self._series: dict[tuple[str, str], _Safe] = {}  # (series name, label value) -> metric
        self._published: dict[tuple[str, str], float] = {}
        self._bounds: dict[str, list[str]] = {}  # histogram -> its `le` values
        self._counters_seen = self._histograms_seen = -1
        self._histograms_due = 0.0
        try:
            for f in FAMILIES:
                self._declare(f)
            self.enabled = True
        except Exception as exc:  # metrics disabled on the server (--allow-metrics=false)
            logger.info("metrics unavailable: %s", exc)
            self.enabled = False

    def _declare(self, f) -> None:
        kind = pb_utils.MetricFamily.GAUGE if f.kind == "gauge" else pb_utils.MetricFamily.COUNTER
        if f.kind != "histogram":
            self._families[f.name] = (pb_utils.MetricFamily(f.name, f.help, kind), f.label)
            # Every series exists from the start, at 0, as in vLLM: a rate() sees its first increase.
            for value in f.values or ("",):
                self._metric(f.name, value)
            return
        self._bounds[f.name] = [*map(_le, f.buckets), "+Inf"]
        for suffix, label in (("_bucket", "le"), ("_sum", None), ("_count", None)):
            self._families[f.name + suffix] = (pb_utils.MetricFamily(f.name + suffix, f.help, kind), label)
        for le in self._bounds[f.name]:
            self._metric(f.name + "_bucket", le)
        self._metric(f.name + "_sum", "")
        self._metric(f.name + "_count", "")

    def _metric(self, name: str, value: str) -> _Safe:
        key = (name, value)
        if key not in self._series:
            family, label = self._families[name]
            labels = {**self._labels, label: value} if label else self._labels
            self._series[key] = _Safe(family.Metric(labels))
        return self._series[key]

    def close(self) -> None:
        """Delete every metric, then its family, from `finalize`, while the stub can still tell
        Triton. Left to the interpreter's exit (a reference cycle holds them), a family's
        destructor writes to the stub's shared memory after it is gone: a segfault at every stop."""
        self.enabled = False
        self._series.clear()  # the metrics first: a family's destructor clears those it still holds
        self._families.clear()
        gc.collect()

    def finished(self, outcome: str) -> None:
        """A request's outcome; a success is counted by its finish reasons (`stats.chunk`)."""
        if outcome != "success":
            self.stats.add(FAILED, 1, outcome)

    def publish(self, load: Load, info: bool = True) -> None:
        """Send what changed since the last call: counters, histograms (at most once a second), gauges,
        and with `info` the info gauges, whose families and series are made on first use."""
        if not self.enabled:
            return
        version, now = self.stats.version, time.monotonic()
        histograms_due = now >= self._histograms_due and version != self._histograms_seen
        if version != self._counters_seen or histograms_due:
            counters, histograms = self.stats.snapshot()
            for key, total in counters.items():
                self._send(key, total)
            self._counters_seen = version
            if histograms_due:
                for name, (cumulative, total) in histograms.items():
                    for le, count in zip(self._bounds[name], cumulative, strict=True):
                        self._send((name + "_bucket", le), count)
                    self._send((name + "_sum", ""), total)
                    self._send((name + "_count", ""), cumulative[-1])
                self._histograms_seen, self._histograms_due = version, now + HISTOGRAM_FLUSH_S
        for name, field in _GAUGES.items():
            value = getattr(load, field)
            if self._published.get((name, "")) != value:
                self._metric(name, "").set(value)
                self._published[(name, "")] = value
        for name, (labels, value) in self.stats.info_snapshot().items() if info else ():
            self._info(name, labels, value)

    def _info(self, name: str, labels: tuple[tuple[str, str], ...], value: float) -> None:
        """An info gauge (vLLM's lora_requests_info, cache_config_info): its family is made on first
        use, as only some engines have one; a label set seen before keeps its series, as in vLLM."""
        key = (name, repr(labels))
        if self._published.get(key) == value:
            return
        if key not in self._series:
            if name not in self._families:
                family = pb_utils.MetricFamily(name, INFO_HELP[name], pb_utils.MetricFamily.GAUGE)
                self._families[name] = (family, None)
            self._series[key] = _Safe(self._families[name][0].Metric({**self._labels, **dict(labels)}))
        self._series[key].set(value)
        self._published[key] = value

    def _send(self, key: tuple[str, str], total: float) -> None:
        delta = total - self._published.get(key, 0)
        if delta:
            self._metric(*key).increment(delta)
            self._published[key] = total
