"""The stack as a container runs it (`serve --host 0.0.0.0`, an API key), started once for the
module on the transformers SmolLM2 alone: only the frontend listens beyond loopback, Triton's
metrics come through it, nested JSON that crashes Triton never reaches it, odd headers are 4xx,
slow headers are cut; its last test drains it with SIGTERM while 6 requests are in flight.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from tests.conftest import HF_OVERRIDES
from tests.servers import engine_requests, free_port, make_repository, running, serve_command, serve_up

# `make lifecycle-test`: a stack of its own, killed, drained or restarted (not in `make test`).
pytestmark = pytest.mark.lifecycle

API_KEY = "sekrit"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MODEL = "smollm2-hf"
FILL_MASK = "bert-fill-mask"
HEADER_TIMEOUT_S = 2.0


@dataclass
class Stack:
    proc: subprocess.Popen
    log: Path
    triton_ports: tuple[int, int, int]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


@pytest.fixture(scope="module")
def exposed(model_dir, bert_dirs, tmp_path_factory):
    """`serve --host 0.0.0.0` with an API key, on the transformers SmolLM2 and a tiny BERT fill-mask
    (KServe's v2 from outside loopback), both ready in seconds."""
    tmp = tmp_path_factory.mktemp("exposed")
    fill_mask = {"like": "minilm", "model": str(bert_dirs["fill_mask"]), "dtype": "float32"}
    repository = make_repository(tmp / "repo", {MODEL: {"model": str(model_dir), **HF_OVERRIDES}, FILL_MASK: fill_mask})
    triton_ports, port = (free_port(), free_port(), free_port()), free_port()
    # A long drain timeout: the drain test's requests must end by themselves, however slow the machine.
    cmd = [*serve_command(repository, *triton_ports, port), "--host=0.0.0.0", "--drain-timeout=150"]
    env = {**os.environ, "TRITON_LLM_API_KEY": API_KEY, "TRITON_LLM_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S)}
    log = tmp / "serve.log"
    with serve_up(cmd, log, f"http://127.0.0.1:{port}/health/ready", env) as proc:
        yield Stack(proc, log, triton_ports, port)


def listening(stack: Stack) -> dict[int, str]:
    """port -> address of every socket serve's processes listen on."""
    found = {}
    for p in psutil.Process(stack.proc.pid).children(recursive=True):
        for c in p.net_connections("tcp"):
            if c.status == psutil.CONN_LISTEN:
                found[c.laddr.port] = c.laddr.ip
    return found


def outside_address() -> str | None:
    """An address of this machine that is not loopback (what another host would connect to)."""
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return None


def test_only_the_frontend_listens_beyond_loopback(exposed):
    sockets = listening(exposed)
    for port in exposed.triton_ports:  # gRPC's socket is IPv6, bound to loopback's IPv4-mapped address
        assert sockets[port] in ("127.0.0.1", "::ffff:127.0.0.1"), sockets
    assert sockets[exposed.port] in ("0.0.0.0", "::"), sockets
    address = outside_address()
    if address is None:
        pytest.skip("no address beyond loopback on this machine")
    assert requests.get(f"http://{address}:{exposed.port}/health/live", timeout=5).status_code == 200
    for port in exposed.triton_ports:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{address}:{port}/v2/health/ready", timeout=5)


def test_tritonclient_http_from_outside_loopback_gets_tritons_tensors(exposed):
    """KServe v2 on the frontend's port, with the key, from the machine's other address: fill-mask's
    tensors equal those of Triton's own (loopback) HTTP port; without the key, a 401."""
    import numpy as np
    import tritonclient.http as httpclient

    address = outside_address()
    if address is None:
        pytest.skip("no address beyond loopback on this machine")
    texts = np.array([[b"the man went to the [MASK] today"], [b"she said [MASK] was [MASK]"]], dtype=np.object_)

    def infer(url: str, headers: dict | None) -> dict[str, np.ndarray]:
        tensor = httpclient.InferInput("text_input", [2, 1], "BYTES")
        tensor.set_data_from_numpy(texts)
        # A copy: tritonclient adds its Inference-Header-Content-Length to the dict it is given.
        result = httpclient.InferenceServerClient(url).infer(FILL_MASK, [tensor], headers=dict(headers or {}))
        return {o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]}

    ours = infer(f"{address}:{exposed.port}", AUTH)
    theirs = infer(f"127.0.0.1:{exposed.triton_ports[0]}", None)
    assert ours.keys() == theirs.keys() == {"output-0", "num_input_tokens"}
    for name, array in theirs.items():
        assert np.array_equal(ours[name], array), name
    r = requests.post(f"http://{address}:{exposed.port}/v2/models/{FILL_MASK}/infer", json={}, timeout=10)
    assert r.status_code == 401 and isinstance(r.json()["error"], str)


def test_the_frontends_metrics_carry_tritons(exposed):
    requests.get(f"{exposed.url}/health/ready", timeout=10)
    started = time.monotonic()
    text = requests.get(f"{exposed.url}/metrics", timeout=10).text
    print(f"GET /metrics with Triton's page: {len(text)} bytes in {1000 * (time.monotonic() - started):.0f} ms")
    assert "openai_requests_total{" in text  # the frontend's own
    assert f'nv_inference_count{{model="{MODEL}"' in text  # Triton's, from its loopback-only port


def test_nested_json_that_crashes_triton_is_refused_on_every_post_route(exposed):
    """Triton 2.51's HTTP parser segfaults on ~256 KB of nested brackets; through the frontend such a
    body is a 4xx before any parsing (schemas/raw.py), on every route that takes a body."""
    doc = requests.get(f"{exposed.url}/openapi.json", timeout=10).json()
    posts = sorted(path for path, operations in doc["paths"].items() if "post" in operations)
    assert len(posts) >= 3, posts
    deep = b"[" * 300_000 + b"]" * 300_000
    for path in posts:
        r = requests.post(
            exposed.url + path, data=deep, headers={**AUTH, "content-type": "application/json"}, timeout=30
        )
        error = r.json()["error"]  # OpenAI's shape, or KServe's {"error": "..."} on its routes
        assert 400 <= r.status_code < 500 and (error if isinstance(error, str) else error["message"]), (path, r.text)
    assert requests.get(f"{exposed.url}/health/ready", timeout=10).status_code == 200  # Triton unharmed


def raw_request(port: int, head: bytes) -> bytes:
    """The status line of the answer to a hand-written request (bytes no HTTP client would send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head + b"\r\n")
        return conn.recv(4096).split(b"\r\n")[0]


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (b"Authorization: Bearer \xff\xfe", b"401"),
        ("Authorization: Bearer ключ".encode(), b"401"),
        (b"Authorization: Bearer sekrit\r\nAuthorization: Bearer sekrit", b"401"),
        (b"Authorization: Bearer sekrit\r\nX-Big: " + b"a" * 100_000, b"431"),
        (b"Authorization: Bearer sekrit\r\nX-Request-Id: \xff\xfe", b"200"),
        (b"Authorization: Bearer sekrit\r\nContent-Length: abc", b"400"),
        (b"Authorization: Bearer sekrit", b"200"),
    ],
    ids=["bytes-ff", "cyrillic", "twice", "100-kb", "odd-request-id", "bad-content-length", "right"],
)
def test_odd_headers_are_4xx_on_the_real_server(exposed, header, status):
    head = b"GET /openai/v1/models HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n"
    assert raw_request(exposed.port, head).split(b" ")[1] == status


def test_a_client_that_never_finishes_its_headers_is_cut(exposed):
    with socket.create_connection(("127.0.0.1", exposed.port)) as slow:
        slow.sendall(b"POST /openai/v1/completions HTTP/1.1\r\nHost: x\r\nAuthor")
        started = time.monotonic()
        assert requests.get(f"{exposed.url}/openai/v1/models", headers=AUTH, timeout=10).status_code == 200
        slow.settimeout(HEADER_TIMEOUT_S + 10)
        assert slow.recv(1024) == b""  # closed by the server
        elapsed = time.monotonic() - started
    assert HEADER_TIMEOUT_S - 0.5 < elapsed < HEADER_TIMEOUT_S + 5


def generate(stack: Stack, endpoint: str, stream: bool) -> dict:
    """A greedy request: its text and finish reason, whole or as far as it came."""
    body = {"model": MODEL, "max_tokens": 32, "temperature": 0.0, "stream": stream}
    if endpoint == "chat/completions":
        body["messages"] = [{"role": "user", "content": "Write a haiku about the sea."}]
    else:
        body["prompt"] = "Once upon a time"
    r = requests.post(f"{stack.url}/openai/v1/{endpoint}", json=body, headers=AUTH, stream=stream, timeout=300)
    r.raise_for_status()
    if not stream:
        choice = r.json()["choices"][0]
        return {"text": choice["text"] if "text" in choice else choice["message"]["content"],
                "finish_reason": choice["finish_reason"], "done": True}  # fmt: skip
    text, finish, done = "", None, False
    for line in r.iter_lines():
        if line == b"data: [DONE]":
            done = True
        elif line.startswith(b"data: "):
            choice = json.loads(line[6:])["choices"][0]
            text += choice.get("text") or (choice.get("delta") or {}).get("content") or ""
            finish = choice["finish_reason"] or finish
    return {"text": text, "finish_reason": finish, "done": done}


def test_sigterm_drains_six_requests_in_flight_then_everything_exits(exposed):
    """Last in this module: it ends the stack."""
    endpoints = ["completions", "chat/completions"]
    reference = {e: generate(exposed, e, stream=False) for e in endpoints}
    plan = [(e, False) for e in endpoints] + [(e, True) for e in endpoints * 2]
    results: dict[int, dict] = {}

    def run(i: int, endpoint: str, stream: bool) -> None:
        try:
            results[i] = generate(exposed, endpoint, stream)
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            results[i] = {"error": repr(exc)}

    threads = [threading.Thread(target=run, args=(i, e, s)) for i, (e, s) in enumerate(plan)]
    for t in threads:
        t.start()
    # All six in the engine (Triton's metrics, through the frontend), none finished yet.
    deadline = time.monotonic() + 120
    while engine_requests(f"{exposed.url}/metrics", MODEL) < len(plan):
        assert time.monotonic() < deadline and not results, (results, exposed.log_tail())
        time.sleep(0.05)
    family = psutil.Process(exposed.proc.pid).children(recursive=True)
    signalled = time.monotonic()
    exposed.proc.send_signal(signal.SIGTERM)

    # At once: readiness false, a new request refused with Retry-After, liveness still true.
    while (ready := requests.get(f"{exposed.url}/health/ready", timeout=10)).status_code != 503:
        assert time.monotonic() - signalled < 5, ready.status_code
    unready_after = time.monotonic() - signalled
    refused = requests.post(f"{exposed.url}/openai/v1/completions", json={"model": MODEL, "prompt": "x"},
                            headers=AUTH, timeout=10)  # fmt: skip
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0, refused.text
    assert refused.json()["error"]["type"] == "service_unavailable"
    assert requests.get(f"{exposed.url}/health/live", timeout=10).status_code == 200

    for t in threads:
        t.join(timeout=300)
    drained_after = time.monotonic() - signalled
    for i, (endpoint, stream) in enumerate(plan):
        got = results[i]
        assert got.get("done") and got["finish_reason"] in ("length", "stop"), (endpoint, stream, got)
        assert got["text"] == reference[endpoint]["text"], (endpoint, stream, got, reference[endpoint])
    assert exposed.proc.wait(timeout=120) == 0, exposed.log_tail()
    exited_after = time.monotonic() - signalled
    _, alive = psutil.wait_procs(family, timeout=5)
    assert not [p for p in alive if running(p)], [(p.pid, p.name()) for p in alive]
    print(f"drain: /health/ready 503 after {unready_after:.2f} s, 6 requests done after {drained_after:.1f} s, "
          f"serve exited after {exited_after:.1f} s")  # fmt: skip
