"""The CPU image's smoke test: serve the demo repository, answer with the openai SDK, stop with a stream in flight.

What it proves: the image starts `triton-llm serve` as a non-root uid, loads the demo's
models (vLLM's smollm2, minilm), answers a chat completion, a streamed completion and an
embeddings request through the published frontend port, and on `docker stop` drains: a
stream started before the stop finishes whole, and the container exits 0 within its grace
period (`--stop-timeout`, the Dockerfile's documented 60 s).
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tools.image.docker import docker, output
from triton_llm.cli.serve import free_port

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 60  # Dockerfile.cpu's documented --stop-timeout: the drain (30 s) + unload (15 s) + margin
READY_TIMEOUT_S = 600
MEMORY = "10g"  # vLLM's 2 GiB KV cache + three models' weights and processes (~6 GiB seen), on a 24 GiB host
KV_CACHE_GIB = "2"
CHAT_MODEL, EMBEDDING_MODEL = "smollm2", "minilm"


def model_mounts(repository: Path) -> list[str]:
    """-v flags for the demo's models where its model.json paths (../../../.cache/models/X) resolve: /.cache/models.

    Each model folder is mounted by its real path: .cache/models holds links into the venv.
    """
    mounts = []
    for model in sorted((repository.parent / ".cache" / "models").iterdir()):
        source = model.resolve()
        unreadable = [p for p in source.rglob("*") if p.is_file() and not p.stat().st_mode & 0o004]
        for path in unreadable:  # uid 1000 reads them (caches made before prepare_model wrote 0644)
            print(f"==> making {path} readable for the container's user", flush=True)
            path.chmod(path.stat().st_mode | 0o044)
        mounts += ["-v", f"{source}:/.cache/models/{model.name}:ro"]
    return mounts


@dataclass
class Container:
    image: str
    name: str = field(default_factory=lambda: f"triton-llm-image-test-{int(time.time())}")
    port: int = field(default_factory=free_port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, repository: Path) -> None:
        docker(
            "run", "--detach", "--name", self.name,
            "--stop-timeout", str(STOP_TIMEOUT_S), "--memory", MEMORY, "--shm-size", "1g",
            "-e", f"VLLM_CPU_KVCACHE_SPACE={KV_CACHE_GIB}",
            "-p", f"127.0.0.1:{self.port}:9000",
            "-v", f"{repository}:/models:ro", *model_mounts(repository),
            self.image, quiet=True,
        )  # fmt: skip

    def state(self, item: str) -> str:
        return output("inspect", "--format", f"{{{{.State.{item}}}}}", self.name)

    def wait_ready(self) -> float:
        start = time.monotonic()
        while time.monotonic() - start < READY_TIMEOUT_S:
            if self.state("Running") != "true":
                raise AssertionError(f"the container exited ({self.state('ExitCode')}) before it was ready")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health/ready", timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(2)
        raise AssertionError(f"not ready after {READY_TIMEOUT_S} s")

    def wait_healthy(self, timeout_s: float = 90) -> str:
        """The image's HEALTHCHECK verdict once it has run against the ready server (every 30 s)."""
        deadline = time.monotonic() + timeout_s
        while (status := output("inspect", "--format", "{{.State.Health.Status}}", self.name)) == "starting":
            if time.monotonic() > deadline:
                break
            time.sleep(2)
        return status

    def memory(self) -> str:
        return output("stats", "--no-stream", "--format", "{{.MemUsage}}", self.name)

    def uids(self) -> list[tuple[str, str]]:
        """(command, uid) of every process in the container, as the host sees them (docker top needs pid)."""
        table = output("top", self.name, "-eo", "pid,uid,comm").splitlines()[1:]
        return [(line.split(None, 2)[2], line.split(None, 2)[1]) for line in table]

    def logs(self, tail: int = 60) -> str:
        proc = docker("logs", "--tail", str(tail), self.name, check=False, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, text=True)  # fmt: skip
        return proc.stdout

    def remove(self) -> None:
        docker("rm", "--force", self.name, check=False, quiet=True, stderr=subprocess.DEVNULL)


def check_requests(client) -> None:
    chat = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Name three colors."}], max_tokens=24, temperature=0
    )
    text = chat.choices[0].message.content
    assert text and chat.usage.completion_tokens > 0, chat
    print(f"chat completion ({CHAT_MODEL}): {text!r} [{chat.choices[0].finish_reason}]")
    pieces = [
        chunk.choices[0].text
        for chunk in client.completions.create(
            model=CHAT_MODEL, prompt="The sky is", max_tokens=16, temperature=0, stream=True
        )
        if chunk.choices
    ]
    assert len(pieces) > 1 and "".join(pieces).strip(), pieces
    print(f"streamed completion ({CHAT_MODEL}): {len(pieces)} chunks, {''.join(pieces)!r}")
    embeddings = client.embeddings.create(model=EMBEDDING_MODEL, input=["a red apple", "a green pear"])
    dims = [len(item.embedding) for item in embeddings.data]
    assert dims == [384, 384], dims
    print(f"embeddings ({EMBEDDING_MODEL}): 2 x {dims[0]} floats")


def check_non_root(container: Container) -> None:
    uids = container.uids()
    assert uids and all(uid != "0" for _, uid in uids), f"a process runs as root: {uids}"
    print(f"{len(uids)} processes, uids {sorted({uid for _, uid in uids})}: {', '.join(sorted({c for c, _ in uids}))}")


def check_drain_on_stop(client, container: Container) -> None:
    """docker stop while a stream is in flight: the stream ends whole, the container exits 0 in time."""
    tokens = 256
    stream = client.completions.create(
        model=CHAT_MODEL, prompt="Once upon a time", max_tokens=tokens, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
    )  # fmt: skip
    chunks = iter(stream)
    first = next(chunks)  # the request is in flight: its first token is out
    stopped: dict[str, float] = {}

    def stop() -> None:
        start = time.monotonic()
        docker("stop", "--time", str(STOP_TIMEOUT_S), container.name, quiet=True)
        stopped["at"], stopped["took"] = start, time.monotonic() - start

    stopper = threading.Thread(target=stop)
    stopper.start()
    signal_at = time.monotonic()
    finish, usage, after_stop = None, None, 0
    for chunk in [first, *chunks]:
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
        if chunk.usage:
            usage = chunk.usage
        after_stop += time.monotonic() > signal_at
    stopper.join()
    assert finish == "length" and usage and usage.completion_tokens == tokens, (finish, usage)
    assert after_stop > 1, "the stream ended before the stop: nothing was drained"
    exit_code = container.state("ExitCode")
    assert exit_code == "0", f"exit code {exit_code} after docker stop\n{container.logs()}"
    assert stopped["took"] < STOP_TIMEOUT_S, stopped
    print(
        f"docker stop with a stream in flight: the stream finished whole ({usage.completion_tokens} tokens, "
        f"{after_stop} chunks read after docker stop began, finish_reason {finish}); "
        f"exit code 0 after {stopped['took']:.1f} s (grace period {STOP_TIMEOUT_S} s)"
    )


def run(image: str, repository: Path = ROOT / "model_repository") -> None:
    from openai import OpenAI

    container = Container(image)
    try:
        container.start(repository)
        print(f"==> container {container.name} on {container.base_url}; waiting for /health/ready", flush=True)
        print(f"ready after {container.wait_ready():.0f} s")
        client = OpenAI(base_url=f"{container.base_url}/openai/v1", api_key="unused", max_retries=0, timeout=120)
        check_requests(client)
        check_non_root(container)
        print(f"memory in use: {container.memory()}")
        health = container.wait_healthy()
        assert health == "healthy", f"HEALTHCHECK says {health}"
        print(f"HEALTHCHECK: {health}")
        check_drain_on_stop(client, container)
    except BaseException:
        print(f"--- the container's log (last lines) ---\n{container.logs()}", flush=True)
        raise
    finally:
        container.remove()
