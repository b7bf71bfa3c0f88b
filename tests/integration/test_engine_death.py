"""A dead engine under `triton-llm serve`: its requests end at once with a 503, new ones get 503
with Retry-After and readiness says 503 while serve reloads the model, then it serves again;
no engine process is orphaned and no /dev/shm file of ours outlives the stack.

One serve, with one model per engine kind; each kill is what an OOM killer does: the
transformers model's stub (its engine lives in it), then vLLM's EngineCore process. The same
stack then ends as a pod does: SIGTERM with a client of Triton's own HTTP streaming, whose
stream finishes whole before every process stops (one vLLM stack for both: ~45 s less).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.conftest import HF_OVERRIDES, TEST_ENGINE_OVERRIDES
from tests.servers import ROOT, free_port, make_repository, running, serve_command
from triton_llm.cli import serve, tritonserver
from triton_llm.cli.serve import wait_ready

# `make lifecycle-test`: a stack of its own, killed, drained or restarted (not in `make test`).
pytestmark = pytest.mark.lifecycle

RECOVERY_S = 240  # a reload on a busy 2-core machine; 10-30 s when idle
DRAIN_S = 5


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("engine-death")
    repository = make_repository(
        tmp / "repo",
        {
            "smollm2": {"model": str(model_dir), **TEST_ENGINE_OVERRIDES, "max_num_seqs": 4},
            "smollm2-hf": {"model": str(model_dir), **HF_OVERRIDES},
        },
    )
    shm_before = set(os.listdir("/dev/shm"))
    port, http = free_port(), free_port()
    log = tmp / "serve.log"
    # A short drain: nothing is in flight through the frontend when this stack stops.
    cmd = [*serve_command(repository, http, free_port(), free_port(), port), f"--drain-timeout={DRAIN_S}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})  # fmt: skip
        try:
            assert wait_ready(proc, f"http://127.0.0.1:{port}/health/ready", 400), log.read_text()[-5000:]
            while b"serve: ready" not in log.read_bytes():  # serve watches the models from here on
                time.sleep(0.2)
            stack_pids = _tree(proc)
            yield proc, f"http://127.0.0.1:{port}", log, http
            stack_pids |= _tree(proc)
            if proc.poll() is None:  # the last test stops it; else stop it here
                proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=90) == 0
            left = set(os.listdir("/dev/shm")) - shm_before - _mapped_by_anyone()
            left = {name for name in left if _creator(name) in (None, *stack_pids)}
            assert not left, f"/dev/shm files left by the stack: {sorted(left)}"
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize("victim", ["transformers stub", "vLLM EngineCore"])
def test_a_killed_engine_ends_its_requests_with_503_then_the_model_serves_again(stack, victim):
    proc, url, log, _ = stack
    model = "smollm2-hf" if victim == "transformers stub" else "smollm2"
    stream = _Stream(url, model)
    assert stream.started.wait(60), "no first chunk"

    target = _find_victim(proc.pid, model, victim)
    target.kill()
    killed = time.monotonic()

    # The request in flight ends at once, with an error event (not a hang, not a clean end).
    stream.join(timeout=15)
    assert not stream.is_alive(), "the stream in flight hung"
    assert stream.error is not None and stream.error["error"]["type"] == "service_unavailable", stream.lines[-3:]
    print(f"{victim}: the stream in flight ended {stream.ended - killed:.2f} s after the kill")

    # Then 503s with Retry-After, readiness 503, until the model is back; nothing else fails.
    _served_again(url, model, log, killed, RECOVERY_S)
    print(f"{victim}: {model} served again {time.monotonic() - killed:.1f} s after the kill")
    assert f"model '{model}' reloaded" in log.read_text()

    # No process of the dead engine is left: one stub per model, vLLM's processes once each.
    time.sleep(6)  # serve stops an orphan with SIGTERM, then SIGKILL after 5 s
    names = [p.name() for p in psutil.Process(proc.pid).children(recursive=True) if _alive(p)]
    assert names.count("VLLM::EngineCore") == 1 and names.count("VLLM::Worker") == 1, names
    assert sum("triton_python" in n for n in names) == 2, names


def test_sigterm_lets_tritons_own_stream_finish_then_every_process_stops(stack):
    """A client of Triton itself (in the pod, or with --triton-host) is drained by Triton: its stream
    ends whole, then the models unload, all within Triton's exit timeout (the drain + UNLOAD_S)."""
    proc, _, log, http = stack
    # Keep a streamed request in flight, so that shutdown happens under load.
    body = {"text_input": "Tell me a story.", "stream": True, "parameters": {"max_tokens": 40, "ignore_eos": True}}
    # Connection: close, as Triton 2.51 waits for its HTTP connections to close, not just their
    # requests: a kept-alive one would hold its stop until the exit timeout.
    url = f"http://127.0.0.1:{http}/v2/models/smollm2/generate_stream"
    stream = requests.post(url, json=body, stream=True, headers={"Connection": "close"})
    lines = stream.iter_lines()
    next(lines)
    family = psutil.Process(proc.pid).children(recursive=True)
    names = {p.name() for p in family}
    assert any("tritonserver" in n for n in names), names
    assert any("triton_python" in n for n in names), names
    assert any("EngineCor" in n for n in names), names  # vLLM's engine process

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    chunks = [json.loads(line.removeprefix(b"data: ")) for line in lines if line]
    assert proc.wait(timeout=60) == 0
    elapsed = time.monotonic() - started
    assert len(chunks) == 39, chunks[-3:]  # the rest of the 40 tokens, none lost
    assert "Found 1 HTTP service connections" in log.read_text()  # Triton waited for the stream
    assert elapsed < DRAIN_S + tritonserver.UNLOAD_S + serve.STOP_MARGIN_S
    print(f"SIGTERM with a 40-token stream on Triton's HTTP: serve exited after {elapsed:.1f} s")
    # The stream the transformers stub held when it was killed never ends in Triton; serve ends
    # Triton once the live models have unloaded instead of waiting out its exit timeout.
    text = log.read_text()
    assert "Exit timeout expired" not in text, text[-3000:]
    # No stub crashes at its exit (its metric families released in finalize), nor did a reload's unload.
    assert "Segfault encountered" not in text, text[text.index("Segfault encountered") - 2000 :][:4000]
    assert text.count("model 'smollm2' reloaded") == 1, "a model was reloaded twice for one death"
    _, alive = psutil.wait_procs(family, timeout=2)
    assert not [p for p in alive if running(p)], [(p.pid, p.name()) for p in alive]


class _Stream(threading.Thread):
    """A long streamed completion through the frontend, read until it ends."""

    def __init__(self, url: str, model: str, max_tokens: int = 4000):
        super().__init__(daemon=True)
        self.url, self.model, self.max_tokens = url, model, max_tokens
        self.started = threading.Event()
        self.lines: list[bytes] = []
        self.error: dict | None = None
        self.ended = 0.0
        self.start()

    def run(self) -> None:
        body = {"model": self.model, "prompt": "Tell me a story.", "max_tokens": self.max_tokens, "ignore_eos": True,
                "stream": True}  # fmt: skip
        with requests.post(f"{self.url}/openai/v1/completions", json=body, stream=True, timeout=120) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                self.lines.append(line)
                self.started.set()
                data = line.removeprefix(b"data: ")
                if data != b"[DONE]" and "error" in (event := json.loads(data)):
                    self.error = event
        self.ended = time.monotonic()


def _served_again(url: str, model: str, log: Path, killed: float, within_s: float, gone=lambda: False) -> bool:
    """After a kill at `killed`: only 503s with Retry-After (readiness 503 meanwhile) until `model`
    answers 200 and readiness does too, within `within_s`. False as soon as `gone()` says the stack
    itself ended (test_scale: Triton aborted)."""
    seen_unready, statuses = False, set()
    while time.monotonic() - killed < within_s:
        if gone():
            return False
        try:
            r = _complete(url, model)
        except requests.ConnectionError:
            if gone():  # the stack ended between the two questions
                return False
            raise
        statuses.add(r.status_code)
        if r.status_code == 503:
            assert r.headers.get("retry-after", "").isdigit() and r.json()["error"]["type"] == "service_unavailable"
            seen_unready |= requests.get(f"{url}/health/ready", timeout=5).status_code == 503
        if r.status_code == 200 and requests.get(f"{url}/health/ready", timeout=5).status_code == 200:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"{model} not back after {within_s} s:\n{log.read_text()[-3000:]}")
    assert statuses <= {200, 503} and 503 in statuses, statuses
    assert seen_unready, "readiness never said 503 while the model was reloaded"
    return True


def _complete(url: str, model: str) -> requests.Response:
    body = {"model": model, "prompt": "Hi", "max_tokens": 3}
    return requests.post(f"{url}/openai/v1/completions", json=body, timeout=60)


def _find_victim(serve_pid: int, model: str, victim: str) -> psutil.Process:
    # Triton never reaps a dead stub: skip the zombie an earlier kill left.
    family = [p for p in psutil.Process(serve_pid).children(recursive=True) if _alive(p)]
    stub = next(p for p in family if "triton_python" in p.name() and f"/{model}/" in p.cmdline()[1])
    if victim == "transformers stub":
        return stub
    return next(p for p in stub.children(recursive=True) if p.name() == "VLLM::EngineCore")


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tree(proc: subprocess.Popen) -> set[int]:
    try:
        return {proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))}
    except psutil.NoSuchProcess:
        return {proc.pid}


def _creator(name: str) -> int | None:
    """The pid a name says made it (joblib's loky semaphores: `sem.loky-<pid>-...`), or None: a
    loky semaphore of another process (make test's unit tests run beside this stack) is not ours."""
    match = re.match(r"sem\.loky-(\d+)-", name)
    return int(match.group(1)) if match else None


def _mapped_by_anyone() -> set[str]:
    """/dev/shm names some live process maps (another test's server, say): not ours to judge."""
    names = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                if "/dev/shm/" in line:
                    names.add(line.split("/dev/shm/", 1)[1].removesuffix(" (deleted)"))
        except OSError:
            pass
    return names
