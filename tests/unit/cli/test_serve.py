"""`serve`'s port check, supervision and stop, without tritonserver: a restart right after a stop
is not refused, a child that dies unasked ends the command with a non-zero status, and on SIGTERM
the frontend drains before Triton is asked to stop, all within the drain plus Triton's unload."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from triton_llm.cli import serve, tritonserver
from triton_llm.cli.serve import PortBusy, check_ports_free, ended, exit_code, stop_all, supervise, wait_ready

pytestmark = pytest.mark.slow


def time_wait_port() -> int:
    """A port whose only socket is a connection in TIME-WAIT, as a server leaves it after a stop:
    the server side closes first (so it is the side that waits), then the listener closes. The
    listener sets SO_REUSEADDR as tritonserver, gRPC and uvicorn do (a TIME-WAIT socket keeps
    that flag, and Linux lets a new bind reuse the port only when both sockets have it)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()
    client.recv(1)  # the server's FIN has arrived
    client.close()
    listener.close()
    return port


def test_a_port_with_a_listener_is_busy():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortBusy, match=f"Triton HTTP port 127.0.0.1:{port} is already in use"):
            check_ports_free("127.0.0.1", {"Triton HTTP": port})


def test_a_listener_on_every_interface_makes_the_loopback_port_busy():
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and tritonserver bind
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortBusy):
            check_ports_free("127.0.0.1", {"OpenAI frontend": port})


def test_a_port_left_in_time_wait_is_free():
    port = time_wait_port()
    # The old check's plain bind is refused here: the case this test is about.
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    check_ports_free("127.0.0.1", {"Triton HTTP": port})


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)


@pytest.mark.parametrize(
    ("end", "status", "said"),
    [
        (lambda p: os.kill(p.pid, signal.SIGKILL), 1, "tritonserver was killed by SIGKILL"),
        (lambda p: os.kill(p.pid, signal.SIGTERM), 1, "tritonserver was killed by SIGTERM"),
    ],
    ids=["sigkill", "sigterm"],
)
def test_a_child_killed_unasked_ends_supervision_with_a_positive_status(capsys, end, status, said):
    triton, frontend = sleeper(), sleeper()
    try:
        end(triton)
        started = time.monotonic()
        assert supervise({"tritonserver": triton, "the OpenAI frontend": frontend}, poll_s=0.05) == status
        assert time.monotonic() - started < 2
        assert said in capsys.readouterr().err
        assert frontend.poll() is None, "stopping the other child is the caller's job (main's finally)"
    finally:
        for p in (triton, frontend):
            p.kill()
            p.wait()


@pytest.mark.parametrize(("code", "status"), [(0, 1), (3, 3)])
def test_a_child_that_exits_unasked_is_a_failure_even_with_status_0(capsys, code, status):
    frontend = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    frontend.wait()
    assert supervise({"the OpenAI frontend": frontend}, poll_s=0.05) == status
    assert f"the OpenAI frontend exited with status {code}" in capsys.readouterr().err


def test_exit_codes_are_never_zero_or_negative():
    assert [exit_code(rc) for rc in (-9, -15, 0, 1, 2)] == [1, 1, 1, 1, 2]


def test_waiting_for_one_child_stops_when_the_other_dies(capsys):
    triton, frontend = sleeper(), sleeper()
    try:
        triton.kill()
        started = time.monotonic()
        assert not wait_ready(frontend, "http://127.0.0.1:9/never", 30, also=[triton, frontend])
        assert time.monotonic() - started < 2
        assert ended({"tritonserver": triton, "the OpenAI frontend": frontend}) == 1
        assert "tritonserver was killed by SIGKILL" in capsys.readouterr().err
    finally:
        for p in (triton, frontend):
            p.kill()
            p.wait()


def child(tmp_path, name: str, on_term: str) -> subprocess.Popen:
    """A process that notes when SIGTERM came, then runs `on_term` (Python) and exits 0."""
    code = (
        "import signal, sys, time\n"
        "def term(*_):\n"
        f"    open({str(tmp_path / name)!r}, 'a').write(f'{{time.monotonic()}}\\n')\n"
        f"    {on_term}\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    return proc


def test_the_frontend_drains_before_triton_is_asked_to_stop(tmp_path):
    frontend = child(tmp_path, "frontend", "time.sleep(1.0)")  # its drain
    triton = child(tmp_path, "triton", "pass")
    stop_all(frontend, triton, drain_timeout=5)
    assert frontend.returncode == 0 and triton.returncode == 0
    frontend_term = float((tmp_path / "frontend").read_text())
    triton_term = float((tmp_path / "triton").read_text())
    assert triton_term - frontend_term >= 1.0  # Triton served the drained requests to their end


def test_what_outlives_the_drain_and_the_unload_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(tritonserver, "UNLOAD_S", 1.0)
    monkeypatch.setattr(serve, "STOP_MARGIN_S", 0.5)
    frontend = child(tmp_path, "frontend", "time.sleep(60)")  # a drain that never ends
    triton = child(tmp_path, "triton", "time.sleep(60)")  # an unload that never ends
    started = time.monotonic()
    stop_all(frontend, triton, drain_timeout=1.0)
    elapsed = time.monotonic() - started
    assert frontend.returncode == -signal.SIGKILL and triton.returncode == -signal.SIGKILL
    assert 2.0 <= elapsed < 1.0 + 1.0 + 0.5 + 5  # drain + unload + margin, and not much more


def test_triton_waiting_only_on_a_dead_models_requests_is_ended_at_once(tmp_path):
    triton = child(tmp_path, "triton", "time.sleep(60)")  # Triton 2.51 holds that model until its exit timeout
    asked = []
    started = time.monotonic()
    serve.stop_group(triton, grace=60, stuck=lambda: asked.append(1) or len(asked) > 2)
    assert triton.returncode == -signal.SIGKILL and time.monotonic() - started < 30


def test_triton_alone_gets_the_drain_and_the_unload(tmp_path, monkeypatch):
    monkeypatch.setattr(tritonserver, "UNLOAD_S", 3.0)
    monkeypatch.setattr(serve, "STOP_MARGIN_S", 1.0)
    triton = child(tmp_path, "triton", "time.sleep(1.5)")  # finishes within drain + unload
    stop_all(None, triton, drain_timeout=1.0)
    assert triton.returncode == 0


def test_triton_listens_on_loopback_and_its_exit_timeout_covers_drain_and_unload():
    cmd = tritonserver.command(Path("/repo"), drain_s=30)
    assert {"--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1"} <= set(cmd)
    assert f"--exit-timeout-secs={30 + int(tritonserver.UNLOAD_S)}" in cmd
    assert "--exit-timeout-secs=13" in tritonserver.command(Path("/repo"), drain_s=0.5 - tritonserver.UNLOAD_S + 12)
    assert serve.loopback("0.0.0.0") == serve.loopback("::") == "127.0.0.1" and serve.loopback("10.1.2.3") == "10.1.2.3"


def test_a_second_signal_kills_both_groups_at_once():
    """Each child's whole group: tritonserver's stubs and engine processes with it."""
    spawner = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    triton = subprocess.Popen([sys.executable, "-c", spawner], start_new_session=True, stdout=subprocess.PIPE)
    frontend = sleeper()
    engine = psutil.Process(int(triton.stdout.readline()))
    try:
        serve.kill_groups([triton, frontend])
        assert triton.wait(timeout=5) == -signal.SIGKILL and frontend.wait(timeout=5) == -signal.SIGKILL
        _, alive = psutil.wait_procs([engine], timeout=5)
        assert all(p.status() == psutil.STATUS_ZOMBIE for p in alive)  # killed with its group
        serve.kill_groups([triton])  # gone already: nothing to do, no error
    finally:
        for p in (triton, frontend):
            p.kill()
            p.wait()
