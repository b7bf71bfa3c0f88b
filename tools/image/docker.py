"""The container runtime for `make image-test`: Debian's docker.io and a dockerd we start and stop.

No registry is reachable here (docs/machine.md), so the base image is a debootstrap root
filesystem imported locally. Builds need BuildKit (Dockerfile.cpu bind-mounts the wheelhouse):
the docker client on PATH when it has buildx, else Debian's own client with DOCKER_BUILDKIT=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from triton_llm.cli.serve import stop_group

BASE_IMAGE = "triton-llm/bookworm:base"
MIRROR = "http://deb.debian.org/debian"
# The base's apt sources: bookworm with its point-release updates and security fixes.
SOURCES = f"""deb {MIRROR} bookworm main
deb {MIRROR} bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
"""
DEBIAN_CLIENT = "/usr/bin/docker"  # docker.io's client: BuildKit built in, no buildx needed


def run(*cmd: str, check: bool = True, quiet: bool = False, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run(cmd, check=check, stdout=kwargs.pop("stdout", out), **kwargs)


def apt_install(**binaries: str) -> None:
    """apt-get install the packages ({binary: package}) whose binary is not on PATH."""
    missing = [package for binary, package in binaries.items() if shutil.which(binary) is None]
    if missing:
        print(f"==> apt-get install {' '.join(missing)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-q", quiet=True, env=env)
        run("apt-get", "install", "-y", "-q", *missing, quiet=True, env=env)


def client() -> list[str]:
    """A docker command line that builds with BuildKit."""
    docker = shutil.which("docker") or DEBIAN_CLIENT
    if run(docker, "buildx", "version", check=False, quiet=True, stderr=subprocess.DEVNULL).returncode == 0:
        return [docker]
    return [DEBIAN_CLIENT]


def docker(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return run(*client(), *args, env={**os.environ, "DOCKER_BUILDKIT": "1"}, **kwargs)


def output(*args: str) -> str:
    return docker(*args, stdout=subprocess.PIPE, text=True).stdout.strip()


class Daemon:
    """dockerd, started only if none answers; stop() ends only the one started here."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen | None = None

    def running(self) -> bool:
        return docker("info", check=False, quiet=True, stderr=subprocess.DEVNULL).returncode == 0

    def start(self) -> None:
        if self.running():
            return
        print(f"==> starting dockerd (log: {self.log})", flush=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.running():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start, see {self.log}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        print("==> stopping the dockerd started here", flush=True)
        stop_group(self.proc, grace=30)  # its own session: whatever it left (containerd) goes too


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False, quiet=True, stderr=subprocess.DEVNULL).returncode == 0


def make_base(tag: str = BASE_IMAGE) -> float:
    """Import a debootstrap'd bookworm (minbase) as `tag`, unless it exists; seconds taken."""
    if image_exists(tag):
        return 0.0
    print(f"==> making the base image {tag} (debootstrap, ~30 s)", flush=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bookworm-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run("debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR, quiet=True)
        (rootfs / "etc/apt/sources.list").write_text(SOURCES)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):  # the downloads, not the install
            for item in (rootfs / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        docker("import", "--change", 'CMD ["/bin/bash"]', "-", tag, stdin=tar.stdout, quiet=True)
        if tar.wait() != 0:
            raise RuntimeError("tar of the root filesystem failed")
    return time.monotonic() - start


def build(dockerfile: Path, tag: str, context: Path, *build_args: str) -> float:
    """docker build; seconds taken."""
    start = time.monotonic()
    args = [arg for value in build_args for arg in ("--build-arg", value)]
    docker("build", "--progress=plain", "-f", str(dockerfile), "-t", tag, *args, str(context))
    return time.monotonic() - start


def image_size(tag: str) -> int:
    return int(output("image", "inspect", "--format", "{{.Size}}", tag))
