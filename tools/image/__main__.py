"""`make image-test`: build the CPU image (Dockerfile.cpu) and smoke-test it in a real container runtime.

Steps: docker.io and debootstrap (apt, if absent); dockerd (started if none answers, stopped at
the end, also on failure); the base image (debootstrap, if missing); the wheelhouse (refreshed
from the venv's lock); `docker build`; then tools/image/smoke.py. Prints the image's size and
the time of each step. Run it under the Triton test lock (`make image-test` takes it): the
container's stack is a Triton session like the integration tests'.
    python -m tools.image [--tag triton-llm:cpu] [--cold]
--cold removes the image, the base image and the build cache first (a build from nothing).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from tools.image import docker as d
from tools.image import smoke, wheelhouse

ROOT = wheelhouse.ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="triton-llm:cpu")
    parser.add_argument("--cold", action="store_true", help="build from nothing: no base image, no build cache")
    parser.add_argument("--no-smoke", action="store_true", help="build only")
    args = parser.parse_args()

    # A CI job's timeout sends SIGTERM: run the finally blocks (container, dockerd) as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    d.apt_install(dockerd="docker.io", debootstrap="debootstrap")
    daemon = d.Daemon(ROOT / ".cache" / "image" / "dockerd.log")
    timings: dict[str, float] = {}
    try:
        daemon.start()
        if args.cold:
            for tag in (args.tag, d.BASE_IMAGE):
                d.docker("rmi", "--force", tag, check=False, quiet=True, stderr=subprocess.DEVNULL)
            d.docker("builder", "prune", "--all", "--force", quiet=True)
        timings["base image (debootstrap + import)"] = d.make_base()
        print("==> the wheelhouse (.cache/image/wheelhouse, the venv's lock)", flush=True)
        timings["wheelhouse (pip download)"] = wheelhouse.make()
        print(f"==> docker build -f Dockerfile.cpu -t {args.tag} .", flush=True)
        step = "docker build" + (" (cold: no base image, no build cache)" if args.cold else "")
        timings[step] = d.build(ROOT / "Dockerfile.cpu", args.tag, ROOT, f"BASE_IMAGE={d.BASE_IMAGE}")
        size = d.image_size(args.tag)
        print(f"image {args.tag}: {size / 1e9:.2f} GB ({size / 2**30:.2f} GiB)")
        for step, seconds in timings.items():
            print(f"  {step}: {seconds:.1f} s")
        if not args.no_smoke:
            start = time.monotonic()
            smoke.run(args.tag)
            print(f"smoke test passed in {time.monotonic() - start:.0f} s")
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
