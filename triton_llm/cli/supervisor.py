"""What `serve` watches besides its two children: model processes, orphans and shared memory.

- **A model's process died** (its Python-backend stub was OOM-killed, or exited because its
  engine died: see generation/runner.py). Triton never restarts a stub: it answers "Stub
  process is not healthy" forever, and keeps the model READY. We unload the model (Triton then
  reports it unavailable, so the frontend's readiness says so and its in-flight requests end
  with a 503) and load it again. A model that fails to load again ends `serve` with status 1,
  so that the container restarts. Only a model Triton still calls READY is reloaded: one an
  operator unloads (the frontend's control routes) is UNLOADING before its process exits, or
  gone from the index once its folder is removed, and stays unloaded.
- **A model's engine died** (vLLM's EngineCore or a worker killed; the transformers batcher
  failed) while its stub lives: the stub answers 503, shuts the engine down and writes a file
  named for the model into dead_engines.ENV's folder, which serve makes and hands to Triton's
  environment; we reload that model the same way. The stub is not made to exit: a stub that
  ends by itself can leave Triton a shared-memory lock it never gets back, and tritonserver
  aborts (boost::interprocess::lock_exception), taking every model with it; an unload ends it
  cleanly. A stub that is killed (OOM) can still do that; nothing on our side prevents it.
- **A stop after a death.** Requests the dead process held never end, so Triton keeps that
  model live through a stop until its exit timeout. Once every other model has unloaded,
  serve ends Triton instead of waiting (`waits_on_the_dead`).
- **Orphans.** An engine's own processes (vLLM's EngineCore and workers) outlive a killed
  stub. `serve` is their subreaper (prctl PR_SET_CHILD_SUBREAPER), so they become its
  children: any child that is not tritonserver or the frontend is one, and is stopped.
- **Shared memory.** Triton's stub regions and vLLM's buffers in /dev/shm outlive processes
  that are killed. We note the /dev/shm files our processes map, and remove those no live
  process of ours maps any more: after a reload, and when the stack stops.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
STUB = "triton_python_backend_stub"
SHM_SCAN_S = 5.0  # how often the /dev/shm files our processes map are noted
DEAD_WAIT_S = 3.0  # Triton's own exit after its last model unloaded takes well under this
ORPHAN_GRACE_S = 5.0  # an orphan's time to exit after SIGTERM (vLLM's resource tracker ignores it)


def become_subreaper() -> bool:
    """Adopt our descendants' orphans (Linux only); False where the call is unavailable."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def say(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, triton_pid: int, http_base: str, children: list[int], dead_engines: Path | None = None):
        self._triton_pid = triton_pid
        self._dead_engines = dead_engines  # the folder of dead_engines.ENV
        self._http = http_base
        self._children = set(children)
        self._stubs: dict[int, str] = {}  # stub pid -> model name
        self._gone: set[str] = set()  # models whose stub vanished, not judged yet
        self._reloading: set[str] = set()
        self.died: set[str] = set()  # models whose process died while this stack ran
        self._stubless_since: float | None = None
        self._failed: str | None = None
        self._orphans: dict[int, float] = {}  # pid -> when it was sent SIGTERM
        self._shm: set[str] = set()
        self._shm_at = 0.0

    # -- called every poll by serve -----------------------------------------------------------

    def poll(self) -> str | None:
        """Watch once; the reason the stack must stop (a model that could not be reloaded), or None."""
        self._reap_orphans()
        self._watch_stubs()
        self._watch_dead_engines()
        if time.monotonic() - self._shm_at > SHM_SCAN_S:
            self._note_shm()
        return self._failed

    def _watch_stubs(self) -> None:
        try:
            current = {p.pid: model for p in psutil.Process(self._triton_pid).children() if (model := _stub_model(p))}
        except psutil.Error:
            return  # tritonserver is gone: serve's own check ends the stack
        # A model being reloaded starts and ends stubs of its own (Triton's config auto-complete
        # runs one): not a death, nor one to judge once the reload is over.
        vanished = {m for pid, m in self._stubs.items() if pid not in current and m not in current.values()}
        self._gone |= vanished - self._reloading
        self._stubs = current
        for model in list(self._gone - self._reloading):
            state = self._state(model)
            if state is None:
                say(f"the process of model '{model}' is gone and Triton did not say why; asking again")
                continue
            self._gone.discard(model)
            if state == "READY":  # gone without an unload: it died
                say(f"the process of model '{model}' died; reloading the model")
                self._start_reload(model)

    def _watch_dead_engines(self) -> None:
        """Reload each model whose stub wrote that its engine died (generation/runner.py)."""
        if self._dead_engines is None:
            return
        for marker in sorted(self._dead_engines.glob("*")):
            model = marker.name
            if model in self._reloading:  # already on its way back (its stub died too)
                marker.unlink(missing_ok=True)
                continue
            if (state := self._state(model)) is None:
                continue  # Triton did not answer: asked again at the next poll
            marker.unlink(missing_ok=True)
            if state == "READY":  # not one an operator unloads meanwhile
                say(f"the engine of model '{model}' died; reloading the model")
                self._start_reload(model)

    def _start_reload(self, model: str) -> None:
        self._reloading.add(model)
        self.died.add(model)
        threading.Thread(target=self._reload, args=(model,), name=f"reload-{model}", daemon=True).start()

    def _reload(self, model: str) -> None:
        started = time.monotonic()
        try:
            # Not READY from here on. No need to wait for the unload to finish: a request the
            # dead process held never ends, which would hold it forever.
            self._post(f"/v2/repository/models/{model}/unload", timeout=60)
            self._post(f"/v2/repository/models/{model}/load", timeout=1800)
            self.collect_shm()  # what the dead process alone mapped
            say(f"model '{model}' reloaded in {time.monotonic() - started:.1f} s")
        except OSError as exc:
            self._failed = f"model '{model}' could not be reloaded: {exc}"
        finally:
            self._gone.discard(model)
            self._reloading.discard(model)

    def waits_on_the_dead(self) -> bool:
        """Triton, stopping, still runs DEAD_WAIT_S after its last model process ended, and one
        had died: it waits for the requests that the dead process held, which never end (Triton
        2.51 counts that model live until its exit timeout). Nothing is left to unload."""
        if not self.died:
            return False
        try:
            stubs = [p for p in psutil.Process(self._triton_pid).children() if _stub_model(p) and _running(p)]
        except psutil.Error:
            return False
        if stubs:
            self._stubless_since = None
            return False
        if self._stubless_since is None:
            self._stubless_since = time.monotonic()
        return time.monotonic() - self._stubless_since >= DEAD_WAIT_S

    def _state(self, model: str) -> str | None:
        """Triton's state of `model` ("" when it is not in the repository), or None when Triton did not answer."""
        try:
            index = json.loads(self._post("/v2/repository/index", timeout=5))
        except (OSError, ValueError):
            return None
        return next((m.get("state", "") for m in index if m.get("name") == model), "")

    def _post(self, path: str, timeout: float) -> bytes:
        request = urllib.request.Request(f"{self._http}{path}", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    # -- orphans ------------------------------------------------------------------------------

    def _reap_orphans(self) -> None:
        now = time.monotonic()
        for child in psutil.Process().children():
            if child.pid in self._children:
                continue
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(child.pid, os.WNOHANG)
                    self._orphans.pop(child.pid, None)
                elif child.pid not in self._orphans:
                    say(f"stopping orphaned process {child.pid} ({child.name()})")
                    child.send_signal(signal.SIGTERM)
                    self._orphans[child.pid] = now
                elif now - self._orphans[child.pid] > ORPHAN_GRACE_S:
                    for p in [*child.children(recursive=True), child]:
                        p.kill()
            except (psutil.Error, ChildProcessError):
                self._orphans.pop(child.pid, None)

    def stop_orphans(self) -> None:
        """Kill every process left under us (after the children were stopped) and reap it."""
        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
        for child in psutil.Process().children():
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass

    # -- shared memory ------------------------------------------------------------------------

    def _note_shm(self) -> None:
        self._shm_at = time.monotonic()
        self._shm |= _mapped_shm(_tree())

    def collect_shm(self) -> None:
        """Remove the /dev/shm files we noted that no live process of ours maps now."""
        in_use = _mapped_shm(_tree())
        for path in sorted(self._shm - in_use):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("could not remove %s: %s", path, exc)
        self._shm &= in_use


def _stub_model(process: psutil.Process) -> str | None:
    """The model a Python-backend stub serves: its model.py is <repository>/<model>/<version>/model.py."""
    try:
        cmdline = process.cmdline()
    except psutil.Error:
        return None
    if len(cmdline) < 2 or not cmdline[0].endswith(STUB):
        return None
    return Path(cmdline[1]).parent.parent.name


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE  # Triton never reaps a dead stub
    except psutil.Error:
        return False


def _tree() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def _mapped_shm(processes: list[psutil.Process]) -> set[str]:
    paths = set()
    for p in processes:
        try:
            with open(f"/proc/{p.pid}/maps") as maps:
                for line in maps:
                    if "/dev/shm/" in line:
                        path = line[line.index("/dev/shm/") :].rstrip("\n").removesuffix(" (deleted)")
                        paths.add(path)
        except OSError:
            pass
    return paths
