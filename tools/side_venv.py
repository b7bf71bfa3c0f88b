"""A separate venv for a tool whose packages clash with the project's, made once.

A stamp file in the venv records what was installed (pins and Python); once it matches,
nothing runs. A lock file beside the venv keeps two runs from building it at once.
Used by tools/kserve_venv.py (KServe's SDK models) and tools/embedding_peers.py (infinity-emb).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

STAMP = ".triton-llm-stamp"
# This machine's pip configuration names index folders that may be absent.
PIP_NOISE = "is ignored: it is neither a file nor a directory"


def ready(venv: Path, stamp: str, entry: str = "bin/python") -> bool:
    marker = venv / STAMP
    return (venv / entry).exists() and marker.exists() and marker.read_text() == stamp


def ensure(venv: Path, stamp: str, build: Callable[[Path], None], entry: str = "bin/python") -> Path:
    """`venv/entry`, after `build(venv)` filled a fresh venv if the stamp was missing or differed."""
    if ready(venv, stamp, entry):
        return venv / entry
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it: wait for it
        if not ready(venv, stamp, entry):
            shutil.rmtree(venv, ignore_errors=True)
            run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
            build(venv)
            (venv / STAMP).write_text(stamp)
    return venv / entry


def run(cmd: list[str], what: str) -> None:
    """Run an install step outside the project's environment; its output only if it fails."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        output = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if PIP_NOISE not in line)
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{output[-4000:]}")
