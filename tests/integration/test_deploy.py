"""The KServe container's command: `triton-llm make-repo ... --serve` writes the entry, then serves it.

The ServingRuntime in deploy/kserve runs exactly this console script with `--model_dir
/mnt/models`; here the script is the venv's, the folder is the demo's MiniLM and the stack is
real (tritonserver + the OpenAI frontend).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import openai
import psutil
import pytest
import requests

from tests.servers import ROOT, free_port, running
from triton_llm.cli.serve import wait_ready

# `make lifecycle-test`: a stack of its own, killed, drained or restarted (not in `make test`).
pytestmark = pytest.mark.lifecycle

# Where pip put the console script for this interpreter (a venv's bin/).
TRITON_LLM = Path(sys.executable).with_name("triton-llm")


def test_make_repo_serve_answers_openai_clients_and_stops_on_sigterm(minilm_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    assert TRITON_LLM.is_file(), f"no {TRITON_LLM}: install the package (`pip install -e .`) for its console script"
    http, frontend = free_port(), free_port()
    log = open(tmp_path / "serve.log", "wb")
    cmd = [str(TRITON_LLM), "make-repo", "--model_name=mini", f"--model_dir={minilm_dir}",
           f"--repository={tmp_path / 'repo'}", "--serve", f"--http-port={http}", f"--grpc-port={free_port()}",
           f"--metrics-port={free_port()}", f"--frontend-port={frontend}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{frontend}"
        assert wait_ready(proc, f"{base}/health", 300), (tmp_path / "serve.log").read_text()[-5000:]
        assert json.loads((tmp_path / "repo" / "mini" / "1" / "model.json").read_text()) == {"model": str(minilm_dir)}

        client = openai.OpenAI(base_url=f"{base}/openai/v1", api_key="unused")
        assert [m.id for m in client.models.list().data] == ["mini"]
        texts = ["Deploying with KServe.", "A second sentence."]
        got = np.array([d.embedding for d in client.embeddings.create(model="mini", input=texts).data])
        want = SentenceTransformer(str(minilm_dir), device="cpu").encode(texts)
        cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert cosine.min() > 0.999
        assert requests.get(f"http://127.0.0.1:{http}/v2/models/mini/ready", timeout=5).status_code == 200

        family = psutil.Process(proc.pid).children(recursive=True)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - started < 30
        _, alive = psutil.wait_procs(family, timeout=2)
        assert not [p for p in alive if running(p)], [(p.pid, p.name()) for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
