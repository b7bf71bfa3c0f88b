"""A separate venv with KServe's Python SDK models, to check deploy/kserve/ (tools/kserve_validate.py).

    python -m tools.kserve_venv                        # create it if needed; print its python
    python -m tools.kserve_venv deploy/kserve/*.yaml   # and check manifests with it

The kserve package cannot go into the project's venv: it pins psutil<6 and brings a model
server's dependencies (FastAPI, gRPC tools, pandas, ...; ~450 MB). The check needs only its
generated Kubernetes models, which import nothing but `kserve.configuration` (urllib3,
six): so kserve is installed without its dependencies, beside the kubernetes client its
models refer to (V1Container, V1Probe, ...), in .cache/kserve-venv (~140 MB, 15-45 s).
A stamp records what was installed; once it matches, nothing runs. A lock file keeps two
test sessions from building it at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tools import side_venv

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "kserve-venv"
VALIDATOR = ROOT / "tools" / "kserve_validate.py"

# kubernetes 36 is the newest client with the classic generated models (openapi_types,
# attribute_map, client-side validation; 37 moved to pydantic) and defines the newer core
# types kserve 0.21's models name (V1ContainerRestartRule, V1PodSchedulingGroup).
# python-dateutil<3: kserve's own bound.
WITH_DEPS = ["kubernetes==36.0.3", "python-dateutil>=2.8,<3"]
WITHOUT_DEPS = ["kserve==0.21.0"]


def python() -> Path:
    return VENV / "bin" / "python"


def _stamp() -> str:
    return json.dumps({"with_deps": WITH_DEPS, "without_deps": WITHOUT_DEPS, "python": sys.version.split()[0]})


def ready() -> bool:
    return side_venv.ready(VENV, _stamp())


def ensure(log: Callable[[str], None] = print) -> Path:
    """The venv's python, the venv created first when missing or out of date."""

    def build(venv: Path) -> None:
        started = time.monotonic()
        log(f"kserve-venv: creating {VENV.relative_to(ROOT)} ({', '.join(WITHOUT_DEPS + WITH_DEPS)}; ~140 MB, 15-45 s)")
        pip = [str(python()), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]
        log("kserve-venv: pip install " + " ".join(WITH_DEPS))
        side_venv.run([*pip, *WITH_DEPS], "kserve-venv: pip install")
        log("kserve-venv: pip install --no-deps " + " ".join(WITHOUT_DEPS))
        side_venv.run([*pip, "--no-deps", *WITHOUT_DEPS], "kserve-venv: pip install --no-deps")
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
        log(f"kserve-venv: ready in {time.monotonic() - started:.0f} s ({size / 2**20:.0f} MB)")

    return side_venv.ensure(VENV, _stamp(), build)


def validate(paths: list[str | Path], log: Callable[[str], None] = print) -> dict:
    """tools/kserve_validate.py's JSON report on these files, run in the venv."""
    cmd = [str(ensure(log)), "-I", str(VALIDATOR), *map(str, paths)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"kserve_validate failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if not argv:
        print(ensure(_log))
        return 0
    report = validate(argv, _log)
    for f in report["findings"]:
        print(f"{f['file']} (document {f['document']}) {f['path']}: {f['message']}")
    checked = len(report["documents"])
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    print(f"{checked} documents checked against {versions}: {len(report['findings'])} findings", file=sys.stderr)
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
