"""Start the stack (tritonserver + the OpenAI frontend) and stop all of it on SIGTERM/Ctrl-C.

    triton-llm serve [--model-repository model_repository] [--host 127.0.0.1] [--drain-timeout 30]
    python -m triton_llm.cli.serve ...    # the same

`--host` is the frontend's address only: Triton's HTTP, gRPC and metrics ports stay on
127.0.0.1 (`--triton-host` to change that), since they take no API key and no size limits
(nested JSON 256 KB deep crashes Triton 2.51's HTTP parser). The frontend's GET /metrics
carries Triton's metrics too.

Each child runs in its own process group: Triton with every Python-backend stub and engine
process it spawns, and the frontend. On SIGTERM or Ctrl-C the frontend drains (readiness 503,
new requests 503, the ones in flight get `--drain-timeout` seconds) and exits; then Triton
stops: it waits for its own clients' requests, if any, and unloads the models within its
--exit-timeout-secs (the drain plus UNLOAD_S). Whatever is still alive in either group
`STOP_MARGIN_S` later is killed: nothing outlives this command. A second signal kills at once.

If either child exits unasked (tritonserver crashed or was OOM-killed), the other is stopped
and this command exits non-zero within a second or so, so that a container restarts rather
than leaving a frontend that answers 503 forever. A model whose process dies is reloaded,
orphaned engine processes are stopped and /dev/shm is cleaned (`supervisor`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from openai_frontend import tls
from openai_frontend.settings import Settings, env_seconds
from triton_llm import dead_engines
from triton_llm.cli import supervisor, tritonserver

GRACE_S = 25.0
# Beyond the drain and Triton's exit timeout: a child's own exit (the frontend's app shutdown,
# tritonserver's), before serve kills what is left.
STOP_MARGIN_S = 5.0


class PortBusy(RuntimeError):
    pass


def free_port() -> int:
    """A port nobody listens on now (for tests and the benchmark)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_ports_free(host: str, ports: dict[str, int]) -> None:
    """Refuse a port that something listens on; a port held only by TIME-WAIT connections is free.

    We bind with SO_REUSEADDR, as tritonserver, gRPC and uvicorn do, so the check predicts their
    own bind. On Linux it succeeds over TIME-WAIT sockets left by such servers (the previous run's
    closed connections, which linger for a minute) and fails with EADDRINUSE while any socket
    listens on the port, on this address or the wildcard. A plain bind also failed over TIME-WAIT
    (a restart right after a stop was refused for a minute); a connect would miss a listener on
    another address, and would call free a port that the servers' own bind would then refuse.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for name, port in ports.items():
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                raise PortBusy(
                    f"{name} port {host}:{port} is already in use: is another `make serve` running? "
                    f"Stop it, or pick other ports (see --help)."
                ) from None


def wait_ready(
    proc: subprocess.Popen, url: str, timeout: float, also: Iterable[subprocess.Popen] = (),
    context: ssl.SSLContext | None = None,
) -> bool:  # fmt: skip
    """True once `url` answers 200 (over TLS with `context`); False after `timeout`, or as soon as
    `proc` or one of `also` exits."""
    watched = [proc, *also]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in watched):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def stop_group(proc: subprocess.Popen, grace: float = GRACE_S, stuck: Callable[[], bool] | None = None) -> None:
    """SIGTERM the leader, wait (no longer once `stuck()` says nothing is left to wait for), then
    SIGKILL anything left in its process group."""
    deadline = time.monotonic() + grace
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            print(f"serve: {proc.args[0]} still running after {grace:.0f} s; killing it", file=sys.stderr)
            break
        if stuck is not None and stuck():
            print(f"serve: {proc.args[0]} only waits for the requests of a model process that died; "
                  "ending it", file=sys.stderr, flush=True)  # fmt: skip
            break
        try:
            proc.wait(timeout=min(0.5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # engine processes that outlived Triton
    except ProcessLookupError:
        pass
    proc.wait()


def exit_code(returncode: int) -> int:
    """Our exit status when a child ended unasked: never 0 (a server that stops is a failure),
    and never negative (killed by a signal), which sys.exit would turn into 256 - n."""
    return returncode if returncode > 0 else 1


def how(returncode: int) -> str:
    """A child's end in words: a negative returncode is the signal that killed it."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def ended(children: dict[str, subprocess.Popen]) -> int | None:
    """If a child has exited, say which and how on stderr and return our exit status."""
    for name, child in children.items():
        if child.poll() is not None:
            print(f"serve: {name} {how(child.returncode)}; stopping the rest", file=sys.stderr, flush=True)
            return exit_code(child.returncode)
    return None


def supervise(
    children: dict[str, subprocess.Popen], watch: supervisor.Supervisor | None = None, poll_s: float = 0.5
) -> int:
    """Wait until one child exits (nobody asked it to: a stop arrives as KeyboardInterrupt), or
    `watch` gives up on a model, and return a non-zero status. The caller stops the others."""
    while (status := ended(children)) is None:
        if watch is not None and (reason := watch.poll()):
            print(f"serve: {reason}; stopping", file=sys.stderr, flush=True)
            return 1
        time.sleep(poll_s)
    return status


def loopback(host: str) -> str:
    """The address to reach a server that listens on `host` (all interfaces: loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def stop_all(
    frontend: subprocess.Popen | None,
    triton: subprocess.Popen,
    drain_timeout: float,
    watch: supervisor.Supervisor | None = None,
) -> None:
    """The frontend drains and exits, then Triton stops; all within drain + UNLOAD_S + margin."""
    deadline = time.monotonic() + drain_timeout + tritonserver.UNLOAD_S + STOP_MARGIN_S
    if frontend is not None:
        stop_group(frontend, grace=drain_timeout + STOP_MARGIN_S)
    stuck = watch.waits_on_the_dead if watch is not None else None
    stop_group(triton, grace=max(deadline - time.monotonic(), 1.0), stuck=stuck)


def kill_groups(children: Iterable[subprocess.Popen]) -> None:
    for child in children:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"), help="default: %(default)s")
    parser.add_argument("--host", default="127.0.0.1", help="the OpenAI frontend's address (0.0.0.0: every interface)")
    parser.add_argument(
        "--triton-host", default="127.0.0.1",
        help="Triton's HTTP, gRPC and metrics address. Beyond loopback they are open to anyone who can reach "
        "them: no API key, no body limit, model control and shared-memory registration (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--frontend-port", type=int, default=9000, help="OpenAI frontend; 0 to run Triton alone")
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument(
        "--drain-timeout", type=float, default=env_seconds("TRITON_LLM_DRAIN_TIMEOUT", 30.0), metavar="S",
        help="on SIGTERM, requests in flight get this long to finish (env TRITON_LLM_DRAIN_TIMEOUT, default 30)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    frontend_settings = Settings()  # as the frontend reads the environment it inherits (TLS: tls.py)
    try:
        probe = tls.probe_context(frontend_settings)  # None without TLS
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"serve: the frontend's TLS files do not load: {exc}") from None
    scheme = tls.scheme(frontend_settings)

    ports = {"Triton HTTP": args.http_port, "Triton gRPC": args.grpc_port, "Triton metrics": args.metrics_port}
    try:
        check_ports_free(args.triton_host, ports)
        if args.frontend_port:
            check_ports_free(args.host, {"OpenAI frontend": args.frontend_port})
    except PortBusy as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2

    cmd = tritonserver.command(
        args.model_repository.resolve(),
        host=args.triton_host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        drain_s=args.drain_timeout,
        extra=tritonserver.trace_flags(),  # none unless OTEL_* names an endpoint (the frontend's rule)
    )
    local = loopback(args.triton_host)
    started = time.monotonic()
    supervisor.become_subreaper()  # engine processes orphaned by a dead model come to us
    env = tritonserver.environment()
    try:  # where a stub names its model when its engine died (triton_llm.dead_engines)
        dead_dir: Path | None = Path(tempfile.mkdtemp(prefix="triton-llm-dead-engines-"))
        env[dead_engines.ENV] = str(dead_dir)
    except OSError:  # no writable temporary folder: such a stub exits instead, as without serve
        dead_dir = None
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    frontend = None
    if args.frontend_port:
        frontend = subprocess.Popen(
            [sys.executable, "-m", "openai_frontend", f"--triton-url={local}:{args.grpc_port}",
             f"--host={args.host}", f"--port={args.frontend_port}", f"--drain-timeout={args.drain_timeout}",
             f"--triton-metrics-url=http://{local}:{args.metrics_port}/metrics", "--log-level=warning"],
            start_new_session=True,
        )  # fmt: skip

    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            name, drain = signal.Signals(signum).name, args.drain_timeout
            print(f"serve: {name} received: draining the requests in flight (up to {drain:g} s), then stopping; "
                  "a second signal stops at once", file=sys.stderr, flush=True)  # fmt: skip
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children = {"tritonserver": proc} | ({"the OpenAI frontend": frontend} if frontend else {})
    base = f"http://{local}:{args.http_port}"
    watch = supervisor.Supervisor(proc.pid, base, [c.pid for c in children.values()], dead_dir)
    try:
        # Each wait also watches the other child: either dying while the other starts ends serve.
        if not wait_ready(proc, f"{base}/v2/health/ready", args.ready_timeout, also=children.values()):
            status = ended(children)
            print("serve: tritonserver did not become ready (see its log above)", file=sys.stderr)
            return status or 1
        watch.poll()  # the models' processes, noted before any client can reach them
        ready_url = f"{scheme}://{loopback(args.host)}:{args.frontend_port}/health/ready"
        if frontend is not None and not wait_ready(frontend, ready_url, 60, also=children.values(), context=probe):
            status = ended(children)
            print("serve: the OpenAI frontend did not become ready", file=sys.stderr)
            return status or 1
        urls = (f"Triton HTTP {base}, gRPC {args.triton_host}:{args.grpc_port}, "
                f"metrics http://{args.triton_host}:{args.metrics_port}/metrics")  # fmt: skip
        if frontend is not None:
            urls += f", OpenAI {scheme}://{args.host}:{args.frontend_port}{frontend_settings.route_prefix}/v1"
        print(f"serve: ready in {time.monotonic() - started:.1f} s: {urls}", flush=True)
        # Whichever child exits first ends the stack.
        return supervise(children, watch)
    except KeyboardInterrupt:
        return 0
    finally:
        # From here on a signal means "now": kill both groups (stop_all's waits then end).
        signal.signal(signal.SIGINT, lambda *_: kill_groups(children.values()))
        signal.signal(signal.SIGTERM, lambda *_: kill_groups(children.values()))
        stop_all(frontend, proc, args.drain_timeout, watch)
        watch.stop_orphans()
        watch.collect_shm()
        if dead_dir is not None:
            shutil.rmtree(dead_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
