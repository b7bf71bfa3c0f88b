"""The frontend's Prometheus metrics, in a registry of the app's own (no module globals)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)


class FrontendMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "openai_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.errors = Counter(
            "openai_stream_errors", "Errors sent inside an SSE stream, by endpoint and status", ["endpoint", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "openai_request_duration_seconds", "Time to the last byte of the response", ["route"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.time_to_first_token = Histogram(
            "openai_time_to_first_token_seconds", "Time from request to the first streamed chunk", ["endpoint"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip


class MetricsMiddleware:
    """Counts and times every request (pure ASGI, so streaming responses are timed to their end)."""

    def __init__(self, app: ASGIApp, metrics: FrontendMetrics, route_prefix: str = ""):
        self.app, self.metrics, self.route_prefix = app, metrics, route_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = route_label(scope, self.route_prefix)
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


def route_label(scope: Scope, prefix: str) -> str:
    """The matched route's path template, with the API's prefix. FastAPI >= 0.137 keeps included
    routers nested, and its `scope["route"]` then has the innermost router's path only."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    path = route.path
    if prefix and not path.startswith(prefix + "/") and scope["path"].startswith(prefix + "/"):
        return prefix + path
    return path
