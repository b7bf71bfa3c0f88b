"""The serve command (`python -m triton_llm.cli.serve`, the code `triton-llm serve` runs): ready, stops everything
on SIGTERM, refuses a busy port but restarts at once after a stop, and exits non-zero when a child dies.

The stack as a container runs it is test_exposed_stack.py; SIGTERM with Triton's own stream in
flight ends test_engine_death.py's stack.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import psutil
import pytest
import requests

from tests.servers import ROOT, free_port, make_repository, running, serve_command
from triton_llm.cli.serve import wait_ready

# `make lifecycle-test`: a stack of its own, killed, drained or restarted (not in `make test`).
pytestmark = pytest.mark.lifecycle


def test_second_serve_reports_the_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            serve_command(tmp_path, port, free_port(), free_port()),
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in proc.stderr


def test_a_restart_right_after_a_stop_gets_the_same_ports(tmp_path):
    """The stopped run's connections linger in TIME-WAIT for a minute; they must not make the
    next run's port check refuse (Triton alone on an empty repository: seconds)."""
    (tmp_path / "empty").mkdir()
    ports = free_port(), free_port(), free_port()
    ready_url = f"http://127.0.0.1:{ports[0]}/v2/health/ready"
    stopped = 0.0
    for run in ("first", "second"):
        log = tmp_path / f"{run}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(serve_command(tmp_path / "empty", *ports, frontend=0), cwd=ROOT, stdout=out,
                                    stderr=subprocess.STDOUT)  # fmt: skip
            try:
                assert wait_ready(proc, ready_url, 60), f"{run} run: {log.read_text()[-3000:]}"
                if run == "second":
                    print(f"restart after stop: ready {time.monotonic() - stopped:.1f} s after the first run ended")
                for _ in range(3):  # the server closes first: its side of each connection stays in TIME-WAIT
                    requests.get(ready_url, headers={"Connection": "close"}, timeout=5)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
                stopped = time.monotonic()
            finally:
                if proc.poll() is None:
                    proc.kill()
        if run == "first":  # the case at hand: a bind without SO_REUSEADDR is refused now
            with socket.socket() as plain, pytest.raises(OSError):
                plain.bind(("127.0.0.1", ports[0]))


@pytest.mark.parametrize("victim", ["tritonserver", "openai_frontend"])
def test_serve_exits_non_zero_and_leaves_nothing_when_a_child_is_killed(minilm_dir, tmp_path, victim):
    repository = make_repository(tmp_path / "repo", {"minilm": {"model": str(minilm_dir)}})
    frontend = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(serve_command(repository, free_port(), free_port(), free_port(), frontend), cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            assert wait_ready(proc, f"http://127.0.0.1:{frontend}/health/ready", 300), log.read_text()[-5000:]
            deadline = time.monotonic() + 10  # serve's own wait polls every 0.5 s: kill once it has said ready
            while "serve: ready" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            family = psutil.Process(proc.pid).children(recursive=True)
            assert any("triton_python" in p.name() for p in family), [p.name() for p in family]
            target = next(p for p in family if victim == p.name() or f"-m {victim}" in " ".join(p.cmdline()))
            started = time.monotonic()
            target.send_signal(signal.SIGKILL)
            status = proc.wait(timeout=60)
            elapsed = time.monotonic() - started
            print(f"kill -9 {victim}: serve exited with {status} after {elapsed:.1f} s")
            assert status == 1, log.read_text()[-3000:]
            assert f"{'the OpenAI frontend' if victim == 'openai_frontend' else victim} was killed by SIGKILL" in (
                log.read_text()
            )
            # Triton gets its graceful stop (unloading the model) when the frontend died.
            assert elapsed < (10 if victim == "tritonserver" else 30)
            _, alive = psutil.wait_procs(family, timeout=2)
            assert not [p for p in alive if running(p)], [(p.pid, p.name()) for p in alive]
        finally:
            if proc.poll() is None:
                proc.kill()
