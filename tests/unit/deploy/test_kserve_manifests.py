"""deploy/kserve/: the manifests against this repository, what KServe's SDK cannot know.

The InferenceServices name the runtime and service accounts defined here; the runtime's
command is the image's `triton-llm make-repo` console script, and its and each
InferenceService's args (KServe appends the latter) are arguments make-repo takes; the
ports, probes and metrics annotation agree with what the container serves. The SDK's own
schema check is in test_kserve_schema.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.servers import ROOT

DEPLOY = ROOT / "deploy" / "kserve"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))
EXPECTED = {"servingruntime.yaml", "servingruntime-cpu.yaml", "isvc-chat-vllm.yaml", "isvc-t5-text2text.yaml",
            "isvc-embedding.yaml", "isvc-s3.yaml", "hf-token-secret.yaml", "responses-store-secret.yaml",
            "isvc-fill-mask.yaml", "isvc-sequence-classification.yaml"}  # fmt: skip
# The ServingRuntimes: {file: (image, the Dockerfile that builds it)}. Every runtime test runs on each.
RUNTIMES = {"servingruntime.yaml": ("triton-llm:latest", "Dockerfile"),
            "servingruntime-cpu.yaml": ("triton-llm:cpu", "Dockerfile.cpu")}  # fmt: skip
# The runtime's command: the console script pip installs in the image, and its subcommand.
ENTRYPOINT = ["triton-llm", "make-repo"]
# KServe's own runtime names: naming ours like one would make KServe apply that server's
# defaults (GetServerTypeFromRuntimeName).
KSERVE_RUNTIMES = {"mlserver", "kserve-torchserve", "kserve-tritonserver", "kserve-tensorflow-serving",
                   "kserve-huggingfaceserver", "kserve-vllmserver"}  # fmt: skip
# storageUri schemes KServe's default storage initializer takes (config/storagecontainers).
STORAGE_SCHEMES = ("hf://", "s3://", "gs://", "pvc://", "oci://", "https://", "http://", "hdfs://", "webhdfs://")


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="module")
def docs() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in MANIFESTS for doc in load_documents(path)]


def of_kind(docs, kind: str) -> list[dict]:
    return [doc for _, doc in docs if doc.get("kind") == kind]


@pytest.fixture(scope="module", params=sorted(RUNTIMES))
def runtime_file(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def runtime(docs, runtime_file) -> dict:
    runtimes = [doc for name, doc in docs if name == runtime_file and doc.get("kind") == "ServingRuntime"]
    assert len(runtimes) == 1, f"one ServingRuntime in {runtime_file}"
    return runtimes[0]


@pytest.fixture(scope="module")
def container(runtime) -> dict:
    containers = runtime["spec"]["containers"]
    assert [c["name"] for c in containers] == ["kserve-container"], "KServe merges the predictor into kserve-container"
    return containers[0]


def test_the_examples_are_all_there(docs):
    assert {path.name for path in MANIFESTS} >= EXPECTED
    assert {name for name, doc in docs if doc.get("kind") == "ServingRuntime"} == set(RUNTIMES)


# -- references between the manifests ---------------------------------------------------


def test_inference_services_use_a_runtime_here_and_its_model_format(docs):
    runtimes = {rt["metadata"]["name"]: rt for rt in of_kind(docs, "ServingRuntime")}
    isvcs = of_kind(docs, "InferenceService")
    assert len(isvcs) >= 4
    for isvc in isvcs:
        model = isvc["spec"]["predictor"]["model"]
        assert model["runtime"] in runtimes, isvc["metadata"]["name"]
        formats = {f["name"] for f in runtimes[model["runtime"]]["spec"]["supportedModelFormats"]}
        assert model["modelFormat"]["name"] in formats, isvc["metadata"]["name"]


def test_runtime_is_chosen_by_name_only(runtime):
    # Namespace-scoped runtimes are tried before cluster-scoped ones whatever the priority:
    # an auto-selectable huggingface format would take over kserve-huggingfaceserver's models.
    assert all(f.get("autoSelect") is False for f in runtime["spec"]["supportedModelFormats"])
    assert runtime["metadata"]["name"] not in KSERVE_RUNTIMES
    assert "serving.kserve.io/server-type" not in (runtime["metadata"].get("annotations") or {})


def test_storage_uris(docs):
    uris = [isvc["spec"]["predictor"]["model"]["storageUri"] for isvc in of_kind(docs, "InferenceService")]
    assert all(uri.startswith(STORAGE_SCHEMES) for uri in uris), uris
    assert any(uri.startswith("hf://") for uri in uris) and any(uri.startswith("s3://") for uri in uris)


def test_service_accounts_and_secrets_are_defined_here(docs):
    secrets = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Secret")}
    accounts = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "ServiceAccount")}
    for account in accounts.values():
        assert {s["name"] for s in account["secrets"]} <= set(secrets), account["metadata"]["name"]
    for isvc in of_kind(docs, "InferenceService"):
        name = isvc["spec"]["predictor"].get("serviceAccountName")
        assert name is None or name in accounts, isvc["metadata"]["name"]
    refs = [(env["valueFrom"]["secretKeyRef"], where)
            for _, doc in docs for where, env in _envs(doc) if "secretKeyRef" in env.get("valueFrom", {})]  # fmt: skip
    assert refs
    for ref, where in refs:
        assert ref["name"] in secrets and ref["key"] in secrets[ref["name"]]["stringData"], where
        assert ref.get("optional") is True, f"{where}: pods must start without the (placeholder) secret applied"


def test_secrets_hold_placeholders_only(docs):
    for secret in of_kind(docs, "Secret"):
        assert "data" not in secret, "stringData, so that the placeholder is what gets replaced"
        for key, value in secret["stringData"].items():
            assert re.fullmatch(r"<REPLACE_WITH_[A-Z_]+>", value), f"{secret['metadata']['name']}.{key}: {value!r}"


def _envs(doc):
    spec = doc.get("spec") or {}
    for c in spec.get("containers", []):
        for env in c.get("env", []):
            yield f"{doc['metadata']['name']}/{c.get('name')}", env
    model = (spec.get("predictor") or {}).get("model") or {}
    for env in model.get("env", []):
        yield doc["metadata"]["name"], env


# -- the container: `triton-llm make-repo`'s arguments, ports, probes -------------------


def make_repo_args(container: dict, isvc: dict) -> list[str]:
    """What the container runs for this InferenceService: KServe appends its args to the runtime's."""
    args = container["args"]
    assert args[:2] == ENTRYPOINT, "args start with the command (no `command`: the image's tini entrypoint stays)"
    name = isvc["metadata"]["name"]
    return [a.replace("{{.Name}}", name) for a in args[2:]] + isvc["spec"]["predictor"]["model"].get("args", [])


def test_the_image_entrypoint_is_kept(container, runtime_file):
    assert "command" not in container
    assert container["image"] == RUNTIMES[runtime_file][0]


def test_the_cpu_runtime_asks_for_no_gpu(docs):
    (runtime,) = [doc for name, doc in docs if name == "servingruntime-cpu.yaml"]
    for container in runtime["spec"]["containers"]:
        resources = container.get("resources", {})
        assert not [k for part in resources.values() for k in part if "gpu" in k], resources


def test_the_command_is_the_installed_make_repo():
    from triton_llm.cli.__main__ import COMMANDS

    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[ENTRYPOINT[0]] == "triton_llm.cli.__main__:main"
    assert COMMANDS[ENTRYPOINT[1]] == "triton_llm.cli.make_repo"


def test_args_are_make_repo_arguments(docs, container):
    from triton_llm.cli.make_repo import build_parser

    parser = build_parser()
    options = {s for action in parser._actions for s in action.option_strings}
    for isvc in of_kind(docs, "InferenceService"):
        name = isvc["metadata"]["name"]
        args = make_repo_args(container, isvc)
        # Spelled out in full (argparse would also take a prefix), and every one known: an
        # unknown one would be handed to vLLM's parser as an engine argument.
        assert [a for a in args if a.startswith("-") and a.split("=")[0] not in options] == [], name
        parsed, unknown = parser.parse_known_args(args)
        assert unknown == [], f"{name}: not `triton-llm make-repo` arguments: {unknown}"
        assert parsed.model_name == name
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, name
        assert parsed.model_dir == "/mnt/models" and parsed.model_id is None, "the storage initializer's folder"
        assert parsed.serve and parsed.host == "0.0.0.0"
        assert str(parsed.repository).startswith("/tmp/"), "writable by the image's non-root user"


def test_ports_probes_and_metrics_agree_with_the_container(docs, runtime, container, runtime_file):
    from openai_frontend.routers.health import router
    from triton_llm.cli.make_repo import build_parser

    parsed, _ = build_parser().parse_known_args(make_repo_args(container, of_kind(docs, "InferenceService")[0]))
    assert container["ports"] == [{"name": "http1", "containerPort": parsed.frontend_port, "protocol": "TCP"}]
    health = {route.path for route in router.routes}
    paths = {"startupProbe": "/health/ready", "readinessProbe": "/health/ready", "livenessProbe": "/health/live"}
    for probe, path in paths.items():
        get = container[probe]["httpGet"]
        assert get["port"] == parsed.frontend_port and get["path"] == path and path in health, probe
    # Loading a model takes minutes: the startup probe waits long before the kubelet restarts
    # the container, and a busy moment does not take a ready pod out of the Service at once.
    startup, readiness = container["startupProbe"], container["readinessProbe"]
    assert startup["initialDelaySeconds"] + startup["failureThreshold"] * startup["periodSeconds"] >= 600
    assert readiness["failureThreshold"] * readiness["periodSeconds"] >= 60
    # One port leaves the pod: the frontend's, whose /metrics carries Triton's (on loopback).
    annotations = runtime["spec"]["annotations"]
    assert annotations["prometheus.kserve.io/port"] == str(parsed.frontend_port)
    assert annotations["prometheus.kserve.io/path"] == "/metrics" and "/metrics" in health
    dockerfile = (ROOT / RUNTIMES[runtime_file][1]).read_text()
    exposed = {int(p) for line in dockerfile.splitlines() if line.startswith("EXPOSE") for p in line.split()[1:]}
    assert exposed == {parsed.frontend_port}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in runtime["spec"]["volumes"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory", "Triton's Python backend needs /dev/shm"


def test_the_grace_period_covers_the_drain_and_the_unload(docs, container):
    """Past terminationGracePeriodSeconds the kubelet kills the pod: it must cover the frontend's
    drain (the runtime's TRITON_LLM_DRAIN_TIMEOUT), the models' unload and serve's margin."""
    from triton_llm.cli import serve, tritonserver

    env = {e["name"]: e.get("value") for e in container["env"]}
    drain = float(env["TRITON_LLM_DRAIN_TIMEOUT"])
    needed = drain + tritonserver.UNLOAD_S + serve.STOP_MARGIN_S
    for isvc in of_kind(docs, "InferenceService"):
        predictor = isvc["spec"]["predictor"]
        overridden = {e["name"]: e.get("value") for e in predictor["model"].get("env", [])}
        own = float(overridden.get("TRITON_LLM_DRAIN_TIMEOUT", drain))
        grace = predictor.get("terminationGracePeriodSeconds", 30)
        assert grace >= own + needed - drain, f"{isvc['metadata']['name']}: {grace} s < {own + needed - drain} s"


def test_tritons_ports_stay_in_the_pod(docs, container):
    for isvc in of_kind(docs, "InferenceService"):
        args = make_repo_args(container, isvc)
        assert not [a for a in args if a.startswith(("--triton-host", "--http-port", "--grpc-port"))], args


def test_protocol_versions_match_what_the_routed_port_serves(docs, runtime):
    # The frontend's port serves KServe's v1 predict and v2 REST (routers/kserve.py); grpc-v2 is
    # not on it (Knative routes one port): operations.md#kserve-protocols.
    assert runtime["spec"]["protocolVersions"] == ["v1", "v2"]
    for isvc in of_kind(docs, "InferenceService"):
        assert isvc["spec"]["predictor"]["model"].get("protocolVersion", "v1") in runtime["spec"]["protocolVersions"]
