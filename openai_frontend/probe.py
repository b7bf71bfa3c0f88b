"""`python -m openai_frontend.probe [PORT]`: exit 0 when the frontend on this machine answers
GET /health/ready with 200, over HTTPS when its TLS settings (the environment it runs with,
TRITON_LLM_SSL_*) say so. The images' HEALTHCHECK: a fixed `http://` URL would fail once TLS
is on. The probe goes to 127.0.0.1 and checks no name (`tls.probe_context`)."""

from __future__ import annotations

import sys
import urllib.request

from openai_frontend import tls
from openai_frontend.settings import Settings

TIMEOUT_S = 8


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    port = int(args[0]) if args else 9000
    settings = Settings()
    url = f"{tls.scheme(settings)}://127.0.0.1:{port}/health/ready"
    try:
        context = tls.probe_context(settings)
        with urllib.request.urlopen(url, timeout=TIMEOUT_S, context=context) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
