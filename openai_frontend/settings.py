"""Frontend settings: command-line flags, with environment variables as defaults."""

from __future__ import annotations

import json
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


def parse_list(value: str) -> list[str]:
    """A list given as vLLM's flags take it (`'["https://a.example"]'`) or comma-separated."""
    value = value.strip()
    if value.startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"{value!r}: expected a JSON list of strings or a comma-separated list") from None
        return [str(i) for i in items]
    return [i.strip() for i in value.split(",") if i.strip()]


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _env_list(name: str, default: tuple[str, ...] = ()) -> list[str]:
    value = _env(name)
    return parse_list(value) if value is not None else list(default)


def _env_flag(name: str) -> bool:
    return (_env(name) or "").lower() in ("1", "true", "yes", "on")


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        raise SystemExit(f"{name}={value!r}: expected an integer") from None


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
    # A larger request body is a 413, refused before it is read or parsed: 32 MiB holds a
    # full-context prompt many times over, 2,048 embedding inputs of ~2 KB each, and a chat with
    # several 1080p PNGs as base64 data: URLs (~3-6 MB each, a third more in base64).
    max_body_bytes: int = 32 * 1024 * 1024
    # On SIGTERM, requests in flight get this long to finish (vLLM's --shutdown-timeout default).
    drain_timeout_s: float = field(default_factory=lambda: env_seconds("TRITON_LLM_DRAIN_TIMEOUT", 30.0))
    # A connection whose request headers are not complete by then is closed (slow clients).
    header_timeout_s: float = field(default_factory=lambda: env_seconds("TRITON_LLM_HEADER_TIMEOUT", 10.0))
    # Triton's Prometheus page, appended to GET /metrics (None: the frontend's own metrics only).
    triton_metrics_url: str | None = None
    # TLS (tls.py): the server's key and certificate chain (PEM), re-read when the files change;
    # with a CA, clients must present a certificate it signed (ssl_cert_reqs: none, optional, required).
    ssl_keyfile: str | None = field(default_factory=lambda: _env("TRITON_LLM_SSL_KEYFILE"))
    ssl_certfile: str | None = field(default_factory=lambda: _env("TRITON_LLM_SSL_CERTFILE"))
    ssl_ca_certs: str | None = field(default_factory=lambda: _env("TRITON_LLM_SSL_CA_CERTS"))
    ssl_cert_reqs: str | None = field(default_factory=lambda: _env("TRITON_LLM_SSL_CERT_REQS"))
    # CORS (app.py): the origins browsers may call from ("*": any); none, no CORS headers at all.
    allowed_origins: list[str] = field(default_factory=lambda: _env_list("TRITON_LLM_ALLOWED_ORIGINS"))
    allowed_methods: list[str] = field(default_factory=lambda: _env_list("TRITON_LLM_ALLOWED_METHODS", ("*",)))
    allowed_headers: list[str] = field(default_factory=lambda: _env_list("TRITON_LLM_ALLOWED_HEADERS", ("*",)))
    allow_credentials: bool = field(default_factory=lambda: _env_flag("TRITON_LLM_ALLOW_CREDENTIALS"))
    # The request log (request_log.py): one JSON line per request; prompts only with
    # log_prompts, cut at max_log_len characters.
    log_requests: bool = field(default_factory=lambda: _env_flag("TRITON_LLM_LOG_REQUESTS"))
    log_prompts: bool = field(default_factory=lambda: _env_flag("TRITON_LLM_LOG_PROMPTS"))
    max_log_len: int = field(default_factory=lambda: _env_int("TRITON_LLM_MAX_LOG_LEN", 2048))
    # Image URLs (media.py; docs/operations.md#images): http(s) hosts that may be fetched ("*": any public
    # host; none: http(s) refused, data: URLs only), the folder file:// URLs may read (None: refused),
    # and per image the fetch's timeout, its bytes, its pixels; images per request.
    allowed_media_domains: list[str] = field(default_factory=lambda: _env_list("TRITON_LLM_ALLOWED_MEDIA_DOMAINS"))
    allowed_local_media_path: str | None = field(default_factory=lambda: _env("TRITON_LLM_ALLOWED_LOCAL_MEDIA_PATH"))
    media_fetch_timeout_s: float = field(default_factory=lambda: env_seconds("TRITON_LLM_MEDIA_FETCH_TIMEOUT", 10.0))
    max_image_bytes: int = field(default_factory=lambda: _env_int("TRITON_LLM_MAX_IMAGE_BYTES", 20 * 1024 * 1024))
    max_image_pixels: int = field(default_factory=lambda: _env_int("TRITON_LLM_MAX_IMAGE_PIXELS", 40_000_000))
    max_images: int = field(default_factory=lambda: _env_int("TRITON_LLM_MAX_IMAGES", 32))
    # The Responses API's state (responses_store.py): sqlite:///<file> (default: the cache
    # folder's responses.sqlite) or postgresql://user:pass@host/db, which replicas share; stored
    # responses kept this long (0: for ever; OpenAI's is 30 days), each at most this many bytes.
    responses_store: str | None = field(default_factory=lambda: _env("TRITON_LLM_RESPONSES_STORE"))
    responses_retention_s: float = field(
        default_factory=lambda: env_seconds("TRITON_LLM_RESPONSES_RETENTION", 30 * 86400.0)
    )
    responses_max_bytes: int = field(default_factory=lambda: _env_int("TRITON_LLM_RESPONSES_MAX_BYTES", 16 << 20))
