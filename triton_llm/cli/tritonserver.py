"""Install and launch the real Triton Inference Server shipped in the `nvidia-pytriton` wheel.

The wheel carries Triton 2.51 (server binary, Python backend, one stub per Python
version). We copy it to a writable folder, add the stub for our Python, and launch it
with the environment the stub needs (STACK.md):
  - our interpreter's libpython first on LD_LIBRARY_PATH (the stub embeds the system's);
  - the venv's bin/ first on PATH (the stub takes its site-packages from `python3`).

With `TRITON_HOME` set (`/opt/tritonserver` in NVIDIA's images, see the Dockerfile), that
installation is launched as it is instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = ROOT / ".cache" / "tritonserver"
# A system Triton (NVIDIA's container images) to launch instead of the pytriton copy.
SYSTEM_HOME = os.environ.get("TRITON_HOME")


def _wheel_dir() -> Path:
    import pytriton

    return Path(pytriton.__file__).parent / "tritonserver"


def _libs_dir() -> Path:
    import pytriton

    return Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"


def install(home: Path = DEFAULT_HOME) -> Path:
    """Copy Triton to `home` once; return it."""
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
    home: Path = Path(SYSTEM_HOME) if SYSTEM_HOME else DEFAULT_HOME,
    extra: list[str] | None = None,
) -> list[str]:
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
        # In-flight requests get this long to finish on SIGTERM before models unload.
        "--exit-timeout-secs=10",
        *(extra or []),
    ]


def main(argv: list[str] | None = None) -> int:
    """Install the copy (once) and print its folder."""
    print(install())
    return 0


if __name__ == "__main__":
    main()
