"""Where does inter-token latency go: Triton's gRPC stream directly vs. through the frontend.

Against a running stack (`make serve`), sends N streamed requests one at a time both ways
and prints inter-arrival percentiles of the streamed responses:

    python -m tools.itl_probe [--requests 12] [--tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import numpy as np

from openai_frontend.triton_client import TritonClient


def grpc_gaps(url: str, prompt: str, tokens: int) -> list[float]:
    # The frontend's own transport, so that the two paths differ only by the HTTP/SSE layer.
    async def run() -> list[float]:
        client = TritonClient(url)
        params = {"max_tokens": tokens, "ignore_eos": True}
        values = {"text_input": prompt, "stream": True, "sampling_parameters": params}
        stamps = [time.perf_counter() async for _ in client.generate("smollm2", values)]
        await client.close()
        return stamps

    return list(np.diff(asyncio.run(run())))


def frontend_gaps(url: str, prompt: str, tokens: int) -> list[float]:
    body = {"model": "smollm2", "prompt": prompt, "max_tokens": tokens, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{url}/openai/v1/completions", json=body, timeout=120) as r:
        stamps = [time.perf_counter() for line in r.iter_lines() if line]
    return list(np.diff(stamps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc-url", default="127.0.0.1:8001")
    parser.add_argument("--frontend-url", default="http://127.0.0.1:9000")
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    gaps: dict[str, list[float]] = {"Triton gRPC directly": [], "through the frontend": []}
    for i in range(args.requests):
        gaps["Triton gRPC directly"] += grpc_gaps(args.grpc_url, f"Story number {i}:", args.tokens)
        gaps["through the frontend"] += frontend_gaps(args.frontend_url, f"Story number {i}:", args.tokens)
    for name, values in gaps.items():
        ms = np.array(values) * 1000
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        print(f"{name}: ITL p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, max {ms.max():.1f} ms (n={len(ms)})")


if __name__ == "__main__":
    main()
