"""The serve command (`python -m triton_llm.cli.serve`, the code `triton-llm serve` runs): ready, stops everything
on SIGTERM, refuses a busy port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import psutil
import requests

from tests.servers import ROOT, free_port
from triton_llm.cli.serve import wait_ready


def serve_command(repository, http: int, grpc: int, metrics: int) -> list[str]:
    return [
        sys.executable, "-m", "triton_llm.cli.serve", f"--model-repository={repository}",
        f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}",
    ]  # fmt: skip


def test_second_serve_reports_the_busy_port(test_repository):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            serve_command(test_repository, port, free_port(), free_port()),
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in proc.stderr


def test_sigterm_stops_triton_and_every_engine_process_within_30s(test_repository, tmp_path):
    http = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        serve_command(test_repository, http, free_port(), free_port()), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        ready = wait_ready(proc, f"http://127.0.0.1:{http}/v2/health/ready", 300)
        assert ready, (tmp_path / "serve.log").read_text()[-5000:]
        # Keep a streamed request in flight, so that shutdown happens under load.
        body = {
            "text_input": "Tell me a story.",
            "stream": True,
            "parameters": {"max_tokens": 4000, "ignore_eos": True},
        }
        stream = requests.post(f"http://127.0.0.1:{http}/v2/models/smollm2/generate_stream", json=body, stream=True)
        next(stream.iter_lines())
        family = psutil.Process(proc.pid).children(recursive=True)
        names = {p.name() for p in family}
        assert any("tritonserver" in n for n in names), names
        assert any("triton_python" in n for n in names), names
        assert any("EngineCor" in n for n in names), names  # vLLM's engine process

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        elapsed = time.monotonic() - started
        assert elapsed < 30
        _, alive = psutil.wait_procs(family, timeout=2)
        assert not [p for p in alive if _running(p)], [(p.pid, p.name()) for p in alive]
        stream.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE  # a zombie has exited; only its parent's bookkeeping remains
    except psutil.NoSuchProcess:
        return False
