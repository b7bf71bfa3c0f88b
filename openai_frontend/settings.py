"""Frontend settings: command-line flags, with environment variables as defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _prefix_from_env() -> str:
    # KServe's Hugging Face runtime serves under /openai; the same variable moves it, and an
    # empty value gives plain /v1/... routes.
    prefix = os.environ.get("KSERVE_OPENAI_ROUTE_PREFIX", "openai").strip("/")
    return f"/{prefix}" if prefix else ""


@dataclass
class Settings:
    triton_url: str = "127.0.0.1:8001"
    host: str = "127.0.0.1"
    port: int = 9000
    route_prefix: str = field(default_factory=_prefix_from_env)
    # When set, every /v1 request needs `Authorization: Bearer <key>`.
    api_key: str | None = field(default_factory=lambda: os.environ.get("TRITON_LLM_API_KEY") or None)
    # How long a model list read from Triton stays fresh.
    models_ttl_s: float = 5.0
    # A larger request body is a 413, refused before it is read or parsed: 4 MiB holds a
    # full-context prompt many times over, and 2,048 embedding inputs of ~2 KB each.
    max_body_bytes: int = 4 * 1024 * 1024
