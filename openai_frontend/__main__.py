"""python -m openai_frontend --triton-url 127.0.0.1:8001 --host 127.0.0.1 --port 9000"""

from __future__ import annotations

import argparse
import logging

from openai_frontend import server
from openai_frontend.app import create_app
from openai_frontend.settings import Settings


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
        help="a larger request body is refused with 413 before it is parsed (default 4 MiB)",
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
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    prefix = args.route_prefix.strip("/")
    settings = Settings(
        triton_url=args.triton_url, host=args.host, port=args.port,
        route_prefix=f"/{prefix}" if prefix else "", api_key=args.api_key, max_body_bytes=args.max_body_bytes,
        api_key_file=args.api_key_file, admin_key=args.admin_key,
        drain_timeout_s=args.drain_timeout, header_timeout_s=args.header_timeout,
        triton_metrics_url=args.triton_metrics_url,
    )  # fmt: skip
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server.run(create_app(settings), settings, log_level=args.log_level)


if __name__ == "__main__":
    main()
