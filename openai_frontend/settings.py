"""Frontend settings: command-line flags, with environment variables as defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _prefix_from_env() -> str:
    # KServe's Hugging Face runtime serves under /openai; the same variable moves it, and an
    # empty value gives plain /v1/... routes.
    prefix = os.environ.get("KSERVE_OPENAI_ROUTE_PREFIX", "openai").strip("/")
    return f"/{prefix}" if prefix else ""


def env_seconds(name: str, default: float) -> float:
    """A duration in seconds from the environment (`serve` and the frontend share these names)."""
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise SystemExit(f"{name}={value!r}: expected a number of seconds") from None


@dataclass
class Settings:
    triton_url: str = "127.0.0.1:8001"
    host: str = "127.0.0.1"
    port: int = 9000
    route_prefix: str = field(default_factory=_prefix_from_env)
    # When set, every /v1 request needs `Authorization: Bearer <key>`.
    api_key: str | None = field(default_factory=lambda: os.environ.get("TRITON_LLM_API_KEY") or None)
    # More client keys, one a line (auth.py); with api_key or alone.
    api_key_file: str | None = field(default_factory=lambda: os.environ.get("TRITON_LLM_API_KEY_FILE") or None)
    # The control routes' key (model load/unload, adapters); unset, those routes are a 404.
    admin_key: str | None = field(default_factory=lambda: os.environ.get("TRITON_LLM_ADMIN_KEY") or None)
    # How long a model list read from Triton stays fresh.
    models_ttl_s: float = 5.0
    # A larger request body is a 413, refused before it is read or parsed: 4 MiB holds a
    # full-context prompt many times over, and 2,048 embedding inputs of ~2 KB each.
    max_body_bytes: int = 4 * 1024 * 1024
    # On SIGTERM, requests in flight get this long to finish (vLLM's --shutdown-timeout default).
    drain_timeout_s: float = field(default_factory=lambda: env_seconds("TRITON_LLM_DRAIN_TIMEOUT", 30.0))
    # A connection whose request headers are not complete by then is closed (slow clients).
    header_timeout_s: float = field(default_factory=lambda: env_seconds("TRITON_LLM_HEADER_TIMEOUT", 10.0))
    # Triton's Prometheus page, appended to GET /metrics (None: the frontend's own metrics only).
    triton_metrics_url: str | None = None
