"""Prometheus metrics of our models, served by Triton on its metrics port (:8002/metrics).

Triton's own metrics count requests per model; these add what an LLM server is judged on
and what vllm_backend leaves off: live requests in our runner and in the engine, and
generated tokens.
"""

from __future__ import annotations

import logging

import triton_python_backend_utils as pb_utils

logger = logging.getLogger(__name__)


class _Null:
    def set(self, value: float) -> None: ...
    def increment(self, value: float) -> None: ...


class _Safe:
    """A metric whose failures are logged, never raised into a request's path."""

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


class ModelMetrics:
    def __init__(self, model_name: str, version: str):
        labels = {"model": model_name, "version": version}
        try:
            gauge, counter = pb_utils.MetricFamily.GAUGE, pb_utils.MetricFamily.COUNTER
            # A family must outlive its metrics, so we keep references to both.
            self._families = [
                pb_utils.MetricFamily(
                    "llm_requests_inflight", "Requests being served by the model (queued or generating)", gauge
                ),
                pb_utils.MetricFamily(
                    "llm_engine_unfinished_requests", "Requests the engine still holds (running or waiting)", gauge
                ),
                pb_utils.MetricFamily(
                    "llm_generated_tokens_total", "Output tokens generated, over all requests and choices", counter
                ),
                pb_utils.MetricFamily(
                    "llm_requests_total", "Finished requests by outcome (success, invalid, cancelled, error)", counter
                ),
            ]
            self.inflight, self.engine_requests, self.tokens = (_Safe(f.Metric(labels)) for f in self._families[:3])
            self._outcomes = self._families[3]
            self._labels = labels
            self._by_outcome: dict[str, object] = {}
        except Exception as exc:  # metrics disabled on the server (--allow-metrics=false)
            logger.info("metrics unavailable: %s", exc)
            self.inflight = self.engine_requests = self.tokens = _Null()
            self._outcomes = None

    def finished(self, outcome: str) -> None:
        if self._outcomes is None:
            return
        if outcome not in self._by_outcome:
            self._by_outcome[outcome] = _Safe(self._outcomes.Metric({**self._labels, "outcome": outcome}))
        self._by_outcome[outcome].increment(1)
