"""deploy/kserve/multinode/ and deploy/kserve/llm-d/: the multi-node (Ray) runtime and the LLMInferenceService.

Schema: tools/kserve_validate.py with KServe's SDK, and for what the SDK has no model of (an
LLMInferenceService's spec, a ServingRuntime's workerSpec) KServe's own CRD schemas copied in
tools/crds/ (kserve aaac4e29). Each negative case is one of these manifests with one mistake,
so a check that reads nothing cannot pass. Then what no schema knows: the arguments are
make-repo's (planned on the demo's SmolLM2), names, ports and grace periods agree.
"""

from __future__ import annotations

import argparse
import copy
import shlex
from pathlib import Path

import pytest
import yaml

from tests.servers import ROOT
from tests.unit.deploy.test_kserve_manifests import load_documents
from tests.unit.deploy.test_kserve_schema import kserve_python  # noqa: F401  (the SDK's venv)
from tools import kserve_venv
from triton_llm.cli import make_repo

MULTINODE = ROOT / "deploy" / "kserve" / "multinode"
LLMD = ROOT / "deploy" / "kserve" / "llm-d"
MANIFESTS = sorted([*MULTINODE.glob("*.yaml"), *LLMD.glob("*.yaml")])
DRAIN_AND_UNLOAD = 30 + 15 + 5  # TRITON_LLM_DRAIN_TIMEOUT, the models' unload, a margin
PRESTOP = 15  # KServe's LLMInferenceService template sleeps this long before SIGTERM


def doc(path: Path, kind: str) -> dict:
    docs = [d for d in load_documents(path) if d["kind"] == kind]
    assert len(docs) == 1, f"one {kind} in {path.name}"
    return docs[0]


@pytest.fixture(scope="module")
def runtime() -> dict:
    return doc(MULTINODE / "servingruntime-multinode.yaml", "ServingRuntime")


@pytest.fixture(scope="module")
def isvc() -> dict:
    return doc(MULTINODE / "isvc-multinode.yaml", "InferenceService")


@pytest.fixture(scope="module")
def llmisvc() -> dict:
    return doc(LLMD / "llminferenceservice.yaml", "LLMInferenceService")


def _worker_typo(d):
    d["spec"]["workerSpec"]["tensorParalelSize"] = d["spec"]["workerSpec"].pop("tensorParallelSize")


def _worker_size_string(d):
    d["spec"]["workerSpec"]["pipelineParallelSize"] = "2"


def _uri_typo(d):
    d["spec"]["model"]["url"] = d["spec"]["model"].pop("uri")


def _replicas_string(d):
    d["spec"]["replicas"] = "2"


def _router_typo(d):
    d["spec"]["router"]["schedular"] = d["spec"]["router"].pop("scheduler")


def _container_port_string(d):
    d["spec"]["template"]["containers"][0]["ports"][0]["containerPort"] = "8000"


NEGATIVE = {  # case: (which manifest, mistake, path of the expected finding, words in its message)
    "worker-typo": ("runtime", _worker_typo, "spec.workerSpec.tensorParalelSize", "did you mean 'tensorParallelSize'"),
    "worker-size": ("runtime", _worker_size_string, "spec.workerSpec.pipelineParallelSize", "expected an integer"),
    "uri-typo": ("llmisvc", _uri_typo, "spec.model.url", "did you mean 'uri'"),
    "uri-missing": ("llmisvc", _uri_typo, "spec.model", "required field 'uri'"),
    "replicas": ("llmisvc", _replicas_string, "spec.replicas", "expected an integer"),
    "router-typo": ("llmisvc", _router_typo, "spec.router.schedular", "did you mean 'scheduler'"),
    "port": ("llmisvc", _container_port_string, "spec.template.containers[0].ports[0].containerPort", "an integer"),
}


@pytest.fixture(scope="module")
def report(kserve_python, runtime, llmisvc, tmp_path_factory) -> dict:  # noqa: F811
    folder = tmp_path_factory.mktemp("scaleout-negative")
    negative = []
    for case, (which, mistake, _, _) in NEGATIVE.items():
        broken = copy.deepcopy({"runtime": runtime, "llmisvc": llmisvc}[which])
        mistake(broken)
        negative.append(folder / f"{case}.yaml")
        negative[-1].write_text(yaml.safe_dump(broken, sort_keys=False))
    result = kserve_venv.validate([*MANIFESTS, *negative])
    findings: dict[str, list[dict]] = {}
    for finding in result["findings"]:
        findings.setdefault(Path(finding["file"]).name, []).append(finding)
    return {"findings": findings, "documents": result["documents"]}


def test_the_manifests_match_kserves_sdk_and_crds(report):
    kinds = {(Path(d["file"]).name, d["kind"]) for d in report["documents"] if Path(d["file"]) in MANIFESTS}
    assert kinds == {("servingruntime-multinode.yaml", "ServingRuntime"), ("isvc-multinode.yaml", "InferenceService"),
                     ("llminferenceservice.yaml", "LLMInferenceService")}  # fmt: skip
    problems = [f"{p.name} {f['path']}: {f['message']}" for p in MANIFESTS for f in report["findings"].get(p.name, [])]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", list(NEGATIVE))
def test_a_mistake_is_a_finding(report, case):
    _, _, path, words = NEGATIVE[case]
    findings = report["findings"].get(f"{case}.yaml", [])
    assert any(f["path"] == path and words in f["message"] for f in findings), findings


# -- what no schema knows ---------------------------------------------------------------


def plan(args: list[str], tmp_path: Path, model_dir: Path):
    """make-repo's entry for these args, with the model folder here in place of /mnt/models."""
    args = [f"--model_dir={model_dir}" if a.startswith("--model_dir=") else a for a in args]
    args = [a.replace("{{.Name}}", "served") for a in args]
    parsed, extra = make_repo.build_parser().parse_known_args([*args, f"--repository={tmp_path}"])
    assert isinstance(parsed, argparse.Namespace)
    return parsed, make_repo.plan(parsed, extra)


def test_multinode_head_runs_make_repo_with_the_ray_executor(runtime, isvc, tmp_path, model_dir):
    head, = runtime["spec"]["containers"]  # fmt: skip
    worker, = runtime["spec"]["workerSpec"]["containers"]  # fmt: skip
    # KServe injects TENSOR_PARALLEL_SIZE & co. into containers of exactly these names.
    assert (head["name"], worker["name"]) == ("kserve-container", "worker-container")
    bash, dash_c, script, _, *args = head["args"]
    assert (bash, dash_c) == ("bash", "-c") and "command" not in head, "the image's tini stays PID 1"
    exec_line = script[script.index("exec triton-llm make-repo") :].replace("\\\n", " ")
    flags = [f for f in shlex.split(exec_line)[3:] if f != "$@"]
    flags = [f.replace("${TENSOR_PARALLEL_SIZE}", "1").replace("${PIPELINE_PARALLEL_SIZE}", "2") for f in flags]
    isvc_args = isvc["spec"]["predictor"]["model"]["args"]
    parsed, entry = plan([*flags, *args, *isvc_args], tmp_path, model_dir)  # KServe appends the isvc's args
    assert parsed.serve and parsed.frontend_port == head["ports"][0]["containerPort"] == 9000
    assert entry.backend == "vllm"
    assert entry.settings["distributed_executor_backend"] == "ray"
    assert entry.settings["pipeline_parallel_size"] == 2
    assert "RAY_NODE_COUNT" in script and "ray start --head" in script
    assert "ray start --address" in worker["args"][2] and "--block" in worker["args"][2]


def test_multinode_service_names_the_runtime_and_fits_the_grace_period(runtime, isvc):
    predictor = isvc["spec"]["predictor"]
    assert predictor["model"]["runtime"] == runtime["metadata"]["name"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert predictor["workerSpec"]["containers"][0]["name"] == "worker-container"
    assert predictor["terminationGracePeriodSeconds"] >= DRAIN_AND_UNLOAD


def test_llmisvc_pod_serves_what_llm_d_expects(llmisvc, tmp_path, model_dir):
    template = llmisvc["spec"]["template"]
    main, = template["containers"]  # fmt: skip
    assert main["name"] == "main", "KServe merges it into its template's container by name"
    assert main["command"][0] == "/usr/bin/tini" and main["args"][:2] == ["triton-llm", "make-repo"]
    parsed, entry = plan(main["args"][2:], tmp_path, model_dir)
    # The name clients send and the picker routes on is the Triton model's.
    assert parsed.model_name == llmisvc["spec"]["model"]["name"]
    # The InferencePool's target port (KServe's scheduler config) is the frontend's, and Triton's is elsewhere.
    assert parsed.frontend_port == main["ports"][0]["containerPort"] == 8000 != parsed.http_port
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["KSERVE_OPENAI_ROUTE_PREFIX"] == "", "OpenAI at /v1/..., as llm-d routes it"
    assert env["TRITON_LLM_SSL_CERTFILE"].startswith("/var/run/kserve/tls/")  # KServe's certificate mount
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"]["port"] == 8000 and main[probe]["httpGet"]["scheme"] == "HTTPS"
    assert entry.settings.get("enable_prefix_caching") is True
    assert template["terminationGracePeriodSeconds"] >= PRESTOP + DRAIN_AND_UNLOAD
