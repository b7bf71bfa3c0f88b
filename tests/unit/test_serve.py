"""`serve`'s port check and supervision, without tritonserver: a restart right after a stop is
not refused, and a child that dies unasked ends the command with a non-zero status."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from triton_llm.cli.serve import PortBusy, check_ports_free, ended, exit_code, supervise, wait_ready


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
