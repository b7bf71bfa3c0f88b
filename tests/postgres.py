"""A real PostgreSQL server for the tests (the Responses API's shared store): Debian's
`postgresql` package (tools/bootstrap.sh installs it), a throw-away cluster on a free port,
started in ~2 s. PostgreSQL refuses to run as root: as root, the cluster is the `postgres`
user's (the package makes that user), run through `runuser`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from triton_llm.cli.serve import free_port


def bin_dir() -> Path:
    """The server's programs: pg_config's bindir, else the newest /usr/lib/postgresql/<v>/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: tools/bootstrap.sh installs it (apt-get install postgresql)")
    return found[-1].parent


class PostgresServer:
    def __init__(self) -> None:
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="triton-llm-pg-"))
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
        self.port = free_port()
        self.url = f"postgresql://triton@127.0.0.1:{self.port}/responses"
        self.log = self.root / "postgres.log"
        self.proc: subprocess.Popen | None = None

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as, *cmd], check=True, capture_output=True, timeout=60)

    def start(self) -> PostgresServer:
        data = str(self.root / "data")
        self._run(str(self.bin / "initdb"), "-D", data, "-U", "triton", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        cmd = [*self._as, str(self.bin / "postgres"), "-D", data, "-p", str(self.port), "-h", "127.0.0.1",
               "-k", str(self.root), *options]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
            )
            if ready.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "triton", "responses")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
