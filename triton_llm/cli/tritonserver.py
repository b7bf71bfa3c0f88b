"""Install and launch the real Triton Inference Server shipped in the `nvidia-pytriton` wheel.

The wheel carries Triton 2.51 (server binary, Python backend, one stub per Python
version). We copy it to a writable folder, add the stub for our Python, and launch it
with the environment the stub needs (docs/machine.md):
  - our interpreter's libpython first on LD_LIBRARY_PATH (the stub embeds the system's);
  - the venv's bin/ first on PATH (the stub takes its site-packages from `python3`).

The copy lives in `$TRITON_LLM_CACHE/tritonserver`; without that variable, in the checkout's
`.cache/` when the package runs from one (an editable install: `make serve`), else in
`./.cache/` under the current directory (an installed package). With `TRITON_HOME` set
(`/opt/tritonserver` in NVIDIA's images, see the Dockerfile), that installation is launched
as it is instead.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

from openai_frontend import tracing

# A system Triton (NVIDIA's container images) to launch instead of the pytriton copy.
SYSTEM_HOME = os.environ.get("TRITON_HOME")
# What Triton's exit timeout holds beyond the drain: unloading the models after the requests in
# flight end (the test repository's 9 models, vLLM's among them, took 7.3 s on 2 CPU cores).
UNLOAD_S = 15.0


def cache_dir() -> Path:
    """Where the Triton copy goes: $TRITON_LLM_CACHE, the checkout's .cache, or ./.cache."""
    if os.environ.get("TRITON_LLM_CACHE"):
        return Path(os.environ["TRITON_LLM_CACHE"])
    # From a checkout, the package's parent folder is the repository (pyproject.toml beside
    # it); installed, it is site-packages, where no cache belongs.
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".cache"
    return Path.cwd() / ".cache"


def default_home() -> Path:
    """The Triton to launch: the system one ($TRITON_HOME) or our copy in the cache."""
    return Path(SYSTEM_HOME) if SYSTEM_HOME else cache_dir() / "tritonserver"


def _wheel_dir() -> Path:
    import pytriton

    return Path(pytriton.__file__).parent / "tritonserver"


def _libs_dir() -> Path:
    import pytriton

    return Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"


def install(home: Path | None = None) -> Path:
    """Copy Triton to `home` (default: the cache's tritonserver/) once; return it."""
    home = home or cache_dir() / "tritonserver"
    stub = home / "backends" / "python" / "triton_python_backend_stub"
    if stub.is_file() and (home / "bin" / "tritonserver").is_file():
        return home
    src = _wheel_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    src_stub = src / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not src_stub.is_file():
        raise FileNotFoundError(f"nvidia-pytriton has no Python-backend stub for Python {version}")
    tmp = home.with_name(home.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, symlinks=True)
    shutil.copy2(src_stub, tmp / "backends" / "python" / "triton_python_backend_stub")
    shutil.rmtree(home, ignore_errors=True)
    tmp.rename(home)
    return home


def environment(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    if SYSTEM_HOME:
        return env  # its stub and libraries are set up by the image
    libdirs = [sysconfig.get_config_var("LIBDIR"), str(_libs_dir())]
    if env.get("LD_LIBRARY_PATH"):
        libdirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libdirs)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def command(
    model_repository: Path,
    *,
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    drain_s: float = 30.0,
    home: Path | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    home = home or default_home()
    return [
        str(home / "bin" / "tritonserver"),
        f"--model-repository={model_repository}",
        f"--backend-directory={home / 'backends'}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--metrics-address={host}",
        f"--metrics-port={metrics_port}",
        # Every model loads at start, as in the default mode; explicit control also lets serve
        # unload and reload a model whose process died (cli/supervisor.py).
        "--model-control-mode=explicit",
        "--load-model=*",
        # On SIGTERM Triton refuses new requests (HTTP connections are refused, gRPC requests
        # find no model) and lets the ones in flight finish, then unloads the models, all
        # within this; past it, it exits at once (2.51: by a segfault) without unloading.
        f"--exit-timeout-secs={math.ceil(drain_s + UNLOAD_S)}",
        *(extra or []),
    ]


def trace_flags(env: Mapping[str, str] = os.environ) -> list[str]:
    """Triton's OpenTelemetry trace mode, on when the OTEL_* variables that the frontend and the models
    read name an endpoint (docs/operations.md#traces). Triton exports OTLP/HTTP only, to the same URL.
    `rate=0`: Triton traces exactly the requests that carry a W3C context, each under its parent (it
    traces every such request whatever the rate): the frontend's sampled ones, and clients' own."""
    url = tracing.traces_url(env)
    if url is None:
        return []
    service = env.get("OTEL_SERVICE_NAME") or "triton-inference-server"  # Triton's own default name
    settings = ["mode=opentelemetry", "level=TIMESTAMPS", "rate=0", "count=-1", f"opentelemetry,url={url}",
                f"opentelemetry,resource=service.name={service}"]  # fmt: skip
    return [f"--trace-config={s}" for s in settings]


def main(argv: list[str] | None = None) -> int:
    """Install the copy (once) and print its folder."""
    print(install())
    return 0


if __name__ == "__main__":
    main()
