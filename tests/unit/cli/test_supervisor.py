"""serve's supervisor, the parts that need no Triton: which /dev/shm files our processes map,
and that only the unused ones are removed."""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from triton_llm.cli import supervisor


def _shm_file() -> Path:
    path = Path("/dev/shm") / f"triton-llm-test-{uuid.uuid4().hex}"
    path.write_bytes(b"\0" * 4096)
    return path


@pytest.mark.slow
def test_a_shared_memory_file_a_child_maps_is_noted_and_removed_only_once_unused():
    path = _shm_file()
    # A child that maps the file and waits: our tree's process, as a stub would be.
    code = ("import mmap, sys; f = open(sys.argv[1], 'r+b'); m = mmap.mmap(f.fileno(), 0); "
            "print('mapped', flush=True); sys.stdin.read()")  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"mapped"
        watch = supervisor.Supervisor(triton_pid=os.getpid(), http_base="http://127.0.0.1:9", children=[child.pid])
        watch._note_shm()
        assert str(path) in watch._shm
        watch.collect_shm()
        assert path.exists()  # still mapped
    finally:
        child.communicate(b"")
    watch.collect_shm()
    assert not path.exists()


def test_a_file_we_never_mapped_is_left_alone():
    path = _shm_file()
    try:
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0):  # mapped by this process, not a child
            watch = supervisor.Supervisor(triton_pid=os.getpid(), http_base="http://127.0.0.1:9", children=[])
            watch._note_shm()
        watch.collect_shm()
        assert path.exists()
    finally:
        path.unlink()


def test_a_stub_is_named_by_its_model_folder_and_other_processes_are_not_stubs():
    import psutil

    assert supervisor._stub_model(psutil.Process()) is None


def test_a_model_unloaded_by_an_operator_is_not_reloaded(monkeypatch):
    """Its process is gone, but Triton says UNLOADING, UNAVAILABLE, or no longer lists it (the
    folder removed): only a model still READY died and is reloaded."""
    watch = supervisor.Supervisor(triton_pid=os.getpid(), http_base="http://127.0.0.1:9", children=[])
    reloads = []
    monkeypatch.setattr(watch, "_reload", reloads.append)
    monkeypatch.setattr(supervisor.psutil.Process, "children", lambda self, recursive=False: [])
    for index in ([{"name": "m", "state": "UNLOADING"}], [{"name": "m", "state": "UNAVAILABLE"}], []):
        monkeypatch.setattr(watch, "_post", lambda path, timeout, index=index: json.dumps(index).encode())
        watch._stubs, watch._gone = {4242: "m"}, set()
        watch._watch_stubs()
        assert watch._gone == set() and reloads == []
    monkeypatch.setattr(watch, "_post", lambda path, timeout: b'[{"name": "m", "state": "READY"}]')
    watch._stubs = {4242: "m"}
    watch._watch_stubs()  # READY with its process gone: it died
    assert watch._reloading == {"m"}


def test_a_stub_that_comes_and_goes_during_a_reload_is_not_a_death(monkeypatch):
    """Loading a model, Triton runs a stub of its own for the config's auto-complete, then the
    instance's: seen as a death once the reload ended, it reloaded a healthy model a second time."""
    watch = supervisor.Supervisor(triton_pid=os.getpid(), http_base="http://127.0.0.1:9", children=[])
    monkeypatch.setattr(watch, "_post", lambda path, timeout: b'[{"name": "m", "state": "READY"}]')
    monkeypatch.setattr(watch, "collect_shm", lambda: None)
    monkeypatch.setattr(supervisor.psutil.Process, "children", lambda self, recursive=False: [])
    watch._reloading, watch._stubs = {"m"}, {4243: "m"}
    watch._watch_stubs()
    assert watch._gone == set()
    watch._gone = {"m"}  # noted by a poll that raced the reload's start
    watch._reload("m")
    assert watch._gone == set() and watch._reloading == set()


def test_a_model_whose_stub_says_its_engine_died_is_reloaded_once(monkeypatch, tmp_path):
    """generation/runner.py names the model in the folder serve hands to Triton's environment; the
    marker goes once read, a model an operator unloaded meanwhile is left alone, and a marker is
    kept while Triton does not answer."""
    watch = supervisor.Supervisor(triton_pid=os.getpid(), http_base="http://127.0.0.1:9", children=[],
                                  dead_engines=tmp_path)  # fmt: skip
    started = []
    monkeypatch.setattr(watch, "_reload", started.append)
    index = {"m": "READY", "gone": "UNAVAILABLE"}
    answers = iter([None, *[json.dumps([{"name": k, "state": v} for k, v in index.items()]).encode()] * 4])

    def post(path, timeout):
        if (answer := next(answers)) is None:
            raise OSError("Triton is busy")
        return answer

    monkeypatch.setattr(watch, "_post", post)
    (tmp_path / "m").write_text("EngineDeadError: EngineCore died")
    watch._watch_dead_engines()  # Triton did not answer: kept for the next poll
    assert (tmp_path / "m").exists() and started == []
    (tmp_path / "gone").write_text("x")
    watch._watch_dead_engines()
    assert list(tmp_path.iterdir()) == [] and watch._reloading == {"m"} and watch.died == {"m"}
    (tmp_path / "m").write_text("again")  # its stub, while the reload runs: the same death
    watch._watch_dead_engines()
    assert list(tmp_path.iterdir()) == [] and watch._reloading == {"m"}
    deadline = time.monotonic() + 5
    while started != ["m"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started == ["m"]


def test_a_stop_waits_on_the_dead_only_after_a_death_and_once_no_stub_is_left(monkeypatch):
    monkeypatch.setattr(supervisor, "DEAD_WAIT_S", 0.0)
    watch = supervisor.Supervisor(triton_pid=os.getpid(), http_base="http://127.0.0.1:9", children=[])
    assert not watch.waits_on_the_dead()  # no model died: Triton's own exit timeout applies
    watch.died.add("m")
    assert watch.waits_on_the_dead()  # this process has no stub child
