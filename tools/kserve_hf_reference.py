"""KServe's own Hugging Face runtime on our encoder models: its predictions for v1 predict
requests, to compare with the frontend's (tests/integration/test_kserve_reference.py).

    python -m tools.kserve_hf_reference '<json list of {model_dir, task, return_probabilities, instances}>'

huggingfaceserver is not published on PyPI: its source comes from a KServe checkout named by
KSERVE_SOURCE (its `python/huggingfaceserver`). It runs on the project's venv (torch,
transformers) plus kserve 0.21.0 and the few packages kserve imports that the venv lacks,
installed without their dependencies into .cache/kserve-hf-deps (~90 MB, once; a stamp records
the pins). What huggingfaceserver's package and kserve's OpenAI layer import of vLLM is not
needed by the encoder model and is stubbed out, so that `HuggingfaceEncoderModel`'s own
preprocess, predict and postprocess run unchanged.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import types
from pathlib import Path

from tools import side_venv

ROOT = Path(__file__).resolve().parent.parent
DEPS = ROOT / ".cache" / "kserve-hf-deps"
PINS = ["kserve==0.21.0", "cloudevents>=1.6.2,<2", "deprecation==2.1.0", "pandas>=2.2,<3", "pytz", "tzdata",
        "tabulate<1", "timing-asgi<1", "grpc-interceptor<1", "kubernetes==36.0.3", "oauthlib", "requests-oauthlib",
        "durationpy", "websocket-client", "six"]  # fmt: skip
STAMP = json.dumps({"pins": PINS, "python": sys.version.split()[0]})


def source() -> Path | None:
    """huggingfaceserver's package folder in KSERVE_SOURCE, or None."""
    root = os.environ.get("KSERVE_SOURCE")
    path = Path(root or "/nonexistent") / "python" / "huggingfaceserver" / "huggingfaceserver"
    return path if (path / "encoder_model.py").exists() else None


def ensure() -> Path:
    def build(_: Path) -> None:
        DEPS.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-input", "--no-deps", "--only-binary=:all:"]
        side_venv.run([*pip, "--target", str(DEPS), *PINS], "kserve-hf-deps: pip install")

    if not side_venv.ready(DEPS, STAMP, "kserve"):
        # A folder of packages, not a venv: side_venv's stamp and lock, without `python -m venv`.
        import fcntl

        DEPS.parent.mkdir(parents=True, exist_ok=True)
        with open(DEPS.parent / "kserve-hf-deps.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not side_venv.ready(DEPS, STAMP, "kserve"):
                subprocess.run(["rm", "-rf", str(DEPS)], check=True)
                build(DEPS)
                (DEPS / side_venv.STAMP).write_text(STAMP)
    return DEPS


def run(requests: list[dict]) -> list[list]:
    """Each request's predictions from huggingfaceserver, in a subprocess with the deps on its path."""
    found = source()
    if found is None:
        raise RuntimeError("KSERVE_SOURCE names no KServe checkout with python/huggingfaceserver")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ensure())])}
    proc = subprocess.run([sys.executable, "-m", "tools.kserve_hf_reference", str(found), json.dumps(requests)],
                          capture_output=True,
                          text=True, env=env, timeout=600, cwd=ROOT)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PREDICTIONS ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"huggingfaceserver failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("PREDICTIONS "))


def _stub(name: str) -> types.ModuleType:
    class Stub(types.ModuleType):
        def __getattr__(self, attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            made = type(attr, (Exception,) if "Error" in attr else (), {})
            setattr(self, attr, made)
            return made

    return Stub(name)


def _predict(package: str, requests: list[dict]) -> list[list]:
    for name in (
        "kserve.protocol.rest.openai",
        "kserve.protocol.rest.openai.errors",
        "kserve.protocol.rest.openai.types",
    ):
        sys.modules[name] = _stub(name)
    pkg = types.ModuleType("huggingfaceserver")
    pkg.__path__ = [package]
    sys.modules["huggingfaceserver"] = pkg
    from huggingfaceserver.encoder_model import HuggingfaceEncoderModel
    from huggingfaceserver.task import MLTask

    out = []
    for r in requests:
        model = HuggingfaceEncoderModel("m", r["model_dir"], task=MLTask[r["task"]],
                                        return_probabilities=r.get("return_probabilities", False))  # fmt: skip
        model.load()
        context: dict = {}
        payload = {"instances": r["instances"]}
        batch = model.preprocess(payload, context)
        logits = asyncio.run(model.predict(batch, context))
        out.append(model.postprocess(logits, context)["predictions"])
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and Path(sys.argv[1]).is_dir():
        print("PREDICTIONS " + json.dumps(_predict(sys.argv[1], json.loads(sys.argv[2]))))
    else:
        print(json.dumps(run(json.loads(sys.argv[1])), indent=1))
