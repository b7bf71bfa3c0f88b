"""python -m openai_frontend --triton-url 127.0.0.1:8001 --host 127.0.0.1 --port 9000"""

from __future__ import annotations

import argparse
import logging

from openai_frontend import server
from openai_frontend.app import create_app
from openai_frontend.settings import Settings, parse_list


def main(argv: list[str] | None = None) -> None:
    defaults = Settings()
    parser = argparse.ArgumentParser(description="OpenAI-compatible frontend for Triton Inference Server")
    parser.add_argument("--triton-url", default=defaults.triton_url, help="Triton's gRPC address")
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument(
        "--route-prefix", default=defaults.route_prefix,
        help="prefix of the /v1 routes (default from KSERVE_OPENAI_ROUTE_PREFIX, else /openai)",
    )  # fmt: skip
    parser.add_argument("--api-key", default=defaults.api_key, help="require this bearer key (env TRITON_LLM_API_KEY)")
    parser.add_argument(
        "--api-key-file", default=defaults.api_key_file, metavar="PATH",
        help="more client keys, one a line (env TRITON_LLM_API_KEY_FILE)",
    )  # fmt: skip
    parser.add_argument(
        "--admin-key", default=defaults.admin_key,
        help="the key of the control routes (model load/unload); unset, they are off (env TRITON_LLM_ADMIN_KEY)",
    )  # fmt: skip
    parser.add_argument(
        "--max-body-bytes", type=int, default=defaults.max_body_bytes,
        help="a larger request body is refused with 413 before it is parsed (default 32 MiB)",
    )  # fmt: skip
    parser.add_argument(
        "--drain-timeout", type=float, default=defaults.drain_timeout_s, metavar="S",
        help="on SIGTERM, requests in flight get this long to finish (env TRITON_LLM_DRAIN_TIMEOUT, default 30)",
    )  # fmt: skip
    parser.add_argument(
        "--header-timeout", type=float, default=defaults.header_timeout_s, metavar="S",
        help="close a connection whose request headers take longer (env TRITON_LLM_HEADER_TIMEOUT, default 10)",
    )  # fmt: skip
    parser.add_argument("--triton-metrics-url", help="Triton's Prometheus page, appended to GET /metrics")
    tls = parser.add_argument_group("TLS (docs/operations.md; the files are re-read when they change)")
    tls.add_argument("--ssl-keyfile", default=defaults.ssl_keyfile, help="env TRITON_LLM_SSL_KEYFILE")
    tls.add_argument("--ssl-certfile", default=defaults.ssl_certfile, help="env TRITON_LLM_SSL_CERTFILE")
    tls.add_argument("--ssl-ca-certs", default=defaults.ssl_ca_certs, help="client CA (env TRITON_LLM_SSL_CA_CERTS)")
    tls.add_argument(
        "--ssl-cert-reqs", default=defaults.ssl_cert_reqs,
        help="client certificates: none, optional or required (0-2; default with a CA: required)",
    )  # fmt: skip
    cors = parser.add_argument_group("CORS (a JSON list or comma-separated; no origins: no CORS headers)")
    cors.add_argument("--allowed-origins", type=parse_list, default=defaults.allowed_origins)
    cors.add_argument("--allowed-methods", type=parse_list, default=defaults.allowed_methods)
    cors.add_argument("--allowed-headers", type=parse_list, default=defaults.allowed_headers)
    cors.add_argument("--allow-credentials", action="store_true", default=defaults.allow_credentials)
    log = parser.add_argument_group("request log (logger openai_frontend.requests, one JSON line per request)")
    log.add_argument("--enable-log-requests", action="store_true", default=defaults.log_requests)
    log.add_argument("--enable-log-prompts", action="store_true", default=defaults.log_prompts, help="and prompts")
    log.add_argument("--max-log-len", type=int, default=defaults.max_log_len, help="prompts cut at this many chars")
    state = parser.add_argument_group("Responses API state (docs/operations.md#responses-state)")
    state.add_argument("--responses-store", default=defaults.responses_store,
                       help="sqlite:///<file> or postgresql://... (env TRITON_LLM_RESPONSES_STORE)")  # fmt: skip
    state.add_argument("--responses-retention", type=float, default=defaults.responses_retention_s,
                       help="seconds kept, 0: always (env TRITON_LLM_RESPONSES_RETENTION)")  # fmt: skip
    state.add_argument("--responses-max-bytes", type=int, default=defaults.responses_max_bytes,
                       help="the largest stored response (env TRITON_LLM_RESPONSES_MAX_BYTES)")  # fmt: skip
    media = parser.add_argument_group("image URLs (docs/operations.md#images; data: URLs are always taken)")
    media.add_argument("--allowed-media-domains", type=parse_list, default=defaults.allowed_media_domains,
                       help="http(s) image hosts, '*': any public one (env ..._ALLOWED_MEDIA_DOMAINS)")  # fmt: skip
    media.add_argument("--allowed-local-media-path", default=defaults.allowed_local_media_path,
                       help="the folder of file:// images (env TRITON_LLM_ALLOWED_LOCAL_MEDIA_PATH)")  # fmt: skip
    media.add_argument("--max-image-bytes", type=int, default=defaults.max_image_bytes)
    media.add_argument("--max-image-pixels", type=int, default=defaults.max_image_pixels)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    prefix = args.route_prefix.strip("/")
    settings = Settings(
        triton_url=args.triton_url, host=args.host, port=args.port,
        route_prefix=f"/{prefix}" if prefix else "", api_key=args.api_key, max_body_bytes=args.max_body_bytes,
        api_key_file=args.api_key_file, admin_key=args.admin_key,
        drain_timeout_s=args.drain_timeout, header_timeout_s=args.header_timeout,
        triton_metrics_url=args.triton_metrics_url,
        ssl_keyfile=args.ssl_keyfile, ssl_certfile=args.ssl_certfile, ssl_ca_certs=args.ssl_ca_certs,
        ssl_cert_reqs=args.ssl_cert_reqs, allowed_origins=args.allowed_origins, allowed_methods=args.allowed_methods,
        allowed_headers=args.allowed_headers, allow_credentials=args.allow_credentials,
        log_requests=args.enable_log_requests or args.enable_log_prompts, log_prompts=args.enable_log_prompts,
        max_log_len=args.max_log_len, allowed_media_domains=args.allowed_media_domains,
        allowed_local_media_path=args.allowed_local_media_path, max_image_bytes=args.max_image_bytes,
        max_image_pixels=args.max_image_pixels, responses_store=args.responses_store,
        responses_retention_s=args.responses_retention, responses_max_bytes=args.responses_max_bytes,
    )  # fmt: skip
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server.run(create_app(settings), settings, log_level=args.log_level)


if __name__ == "__main__":
    main()
