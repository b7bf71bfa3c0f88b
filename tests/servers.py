"""Start real servers for tests, the way vLLM's test utilities do: free ports, poll health,
fail fast (with the log) if the process dies, terminate then kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

from triton_llm.cli import supervisor, tritonserver
from triton_llm.cli.serve import free_port, stop_group, wait_ready

ROOT = Path(__file__).resolve().parent.parent


def make_repository(dest: Path, entries: dict[str, dict]) -> Path:
    """Copies of demo repository entries, their model.json updated: {entry: {key: value}}.

    An entry not in the demo repository is a copy of the one named by its `like` key
    (default `smollm2-hf`), with its own settings (any model path given).
    """
    for name, settings_update in entries.items():
        settings_update = dict(settings_update)
        like = settings_update.pop("like", "smollm2-hf")
        source = ROOT / "model_repository" / name
        entry = dest / name
        shutil.copytree(source if source.exists() else ROOT / "model_repository" / like, entry)
        settings = json.loads((entry / "1" / "model.json").read_text())
        settings.update(settings_update)
        (entry / "1" / "model.json").write_text(json.dumps(settings, indent=2))
    return dest


class TritonProcess:
    def __init__(self, cmd: list[str], http_port: int, grpc_port: int, metrics_port: int, log: Path):
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.http_url = f"http://127.0.0.1:{http_port}"
        self.grpc_url = f"127.0.0.1:{grpc_port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(
            cmd, env=tritonserver.environment(), stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def wait_ready(self, timeout: float = 600) -> None:  # the session stack, beside the unit tests
        if not wait_ready(self.proc, f"{self.http_url}/v2/health/ready", timeout):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.proc.returncode}:\n{self.log_tail()}")
            raise TimeoutError(f"tritonserver not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30) -> None:
        # Triton removes a model's /dev/shm region as it unloads it; one killed before (past
        # `timeout`, or by a crash) leaves them, as `serve`'s supervisor knows: remove those
        # that no process maps any more.
        try:
            regions = supervisor._mapped_shm([psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children()])
        except psutil.Error:
            regions = set()
        stop_group(self.proc, grace=timeout)
        self._log_file.close()
        for path in regions - supervisor._mapped_shm(list(psutil.process_iter())):
            Path(path).unlink(missing_ok=True)


def start_triton(repository: Path, log: Path) -> TritonProcess:
    ports = free_port(), free_port(), free_port()
    cmd = tritonserver.command(repository, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2])
    server = TritonProcess(cmd, *ports, log=log)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def metric(url: str, name: str, model: str = "smollm2", **labels: str) -> float:
    """The value of one series of `model` (label `model_name`, or Triton's `model`) from a
    Prometheus text page; `labels` pick one of several, e.g. finished_reason="length"."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in requests.get(url, timeout=5).text.splitlines():
        if not line.startswith(name + "{") or not (f'model_name="{model}"' in line or f'model="{model}"' in line):
            continue
        if all(w in line for w in wanted):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def engine_requests(url: str, model: str = "smollm2") -> float:
    """Requests the model's engine holds: vLLM's running plus waiting gauges."""
    return metric(url, "vllm:num_requests_running", model) + metric(url, "vllm:num_requests_waiting", model)


class FrontendProcess:
    """`python -m openai_frontend` as a subprocess on a free port; over TLS when `ca` is given
    (the CA that signs its certificate; `cert`: a client certificate and key, for mutual TLS)."""

    def __init__(
        self, triton_grpc_url: str, log: Path, env: dict[str, str] | None = None, args: list[str] = (),
        ca: Path | None = None, cert: tuple[Path, Path] | None = None,
    ):  # fmt: skip
        self.port = free_port()
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self.verify, self.cert = (str(ca) if ca else True), cert
        self.log = log
        self._log_file = open(log, "wb")
        cmd = [sys.executable, "-m", "openai_frontend", f"--triton-url={triton_grpc_url}", f"--port={self.port}", *args]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def wait_up(self, timeout: float = 60, path: str = "/health", status: int = 200) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"frontend exited with {self.proc.returncode}:\n{self.log.read_text()[-5000:]}")
            try:
                if requests.get(self.url + path, timeout=5, verify=self.verify, cert=self.cert).status_code == status:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"frontend not up after {timeout} s:\n{self.log.read_text()[-5000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()


@contextmanager
def frontend_up(triton_grpc_url: str, log: Path, **kwargs) -> Iterator[FrontendProcess]:
    """A FrontendProcess (same arguments) once it answers, stopped on the way out."""
    server = FrontendProcess(triton_grpc_url, log, **kwargs)
    try:
        server.wait_up()
        yield server
    finally:
        server.stop()


@contextmanager
def serve_up(cmd: list[str], log: Path, ready_url: str, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """`triton-llm serve` (`cmd`: serve_command's, and flags) writing to `log`, once `ready_url` answers;
    SIGTERM on the way out (a kill past 60 s), unless a test stopped it itself."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_ready(proc, ready_url, 300), log.read_text(errors="replace")[-5000:]
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def serve_command(repository, http: int, grpc: int, metrics: int, frontend: int | None = None) -> list[str]:
    frontend = free_port() if frontend is None else frontend
    return [
        sys.executable, "-m", "triton_llm.cli.serve", f"--model-repository={repository}",
        f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}", f"--frontend-port={frontend}",
    ]  # fmt: skip


def running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE  # a zombie has exited; only its parent's bookkeeping remains
    except psutil.NoSuchProcess:
        return False
