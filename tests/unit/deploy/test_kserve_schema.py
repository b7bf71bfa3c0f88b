"""deploy/kserve/: every manifest against KServe's own SDK models.

tools/kserve_validate.py walks each document with kserve's generated models
(V1alpha1ServingRuntime, V1beta1InferenceService) and the kubernetes client's (V1Secret,
V1ServiceAccount): unknown keys, wrong primitive types and the SDK's required fields are
findings. The SDK lives in its own venv (.cache/kserve-venv, created on first use by
tools/kserve_venv.py, ~30 s; then a run takes well under a second). Each negative case is a
real manifest with one mistake, so that a validator that checks nothing cannot pass.

What the SDK cannot know (references, the container's command, ports) is in
test_kserve_manifests.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.unit.deploy.test_kserve_manifests import DEPLOY, MANIFESTS, load_documents
from tools import kserve_venv


@pytest.fixture(scope="session")
def kserve_python(pytestconfig) -> Path:
    """The venv with KServe's SDK; its first creation is shown even under pytest's capture."""
    if kserve_venv.ready():
        return kserve_venv.python()
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    if capture is None:  # -p no:capture
        return kserve_venv.ensure()
    with capture.global_and_fixture_disabled():
        print()
        return kserve_venv.ensure(log=lambda message: print(message, flush=True))


# -- negative cases: each a real manifest with one mistake ------------------------------


def _isvc(docs_by_file):
    return copy.deepcopy(docs_by_file["isvc-chat-vllm.yaml"][0])


def _runtime(docs_by_file):
    return copy.deepcopy(docs_by_file["servingruntime.yaml"][0])


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def _typo_storage_uri(d):
    doc = _isvc(d)
    _rename(doc["spec"]["predictor"]["model"], "storageUri", "storageUrl")
    return doc


def _typo_runtime(d):
    doc = _isvc(d)
    _rename(doc["spec"]["predictor"]["model"], "runtime", "runtme")
    return doc


def _model_format_as_string(d):
    doc = _isvc(d)
    doc["spec"]["predictor"]["model"]["modelFormat"] = "huggingface"
    return doc


def _port_as_string(d):
    doc = _runtime(d)
    doc["spec"]["containers"][0]["ports"][0]["containerPort"] = "9000"
    return doc


def _annotation_as_number(d):
    doc = _runtime(d)
    doc["spec"]["annotations"]["prometheus.kserve.io/port"] = 8002
    return doc


def _container_without_name(d):
    doc = _runtime(d)
    del doc["spec"]["containers"][0]["name"]
    return doc


def _probe_typo(d):
    doc = _runtime(d)
    _rename(doc["spec"]["containers"][0]["readinessProbe"], "httpGet", "httpGET")
    return doc


def _unknown_kind(d):
    doc = _isvc(d)
    doc["apiVersion"] = "serving.kserve.io/v1"
    return doc


def _status_in_manifest(d):
    doc = _isvc(d)
    doc["status"] = {}
    return doc


NEGATIVE = {  # case: (build, path of the expected finding, words in its message)
    "storageUrl": (_typo_storage_uri, "spec.predictor.model.storageUrl", "did you mean 'storageUri'"),
    "runtme": (_typo_runtime, "spec.predictor.model.runtme", "unknown field 'runtme'"),
    "modelFormat-string": (_model_format_as_string, "spec.predictor.model.modelFormat", "expected a mapping"),
    "containerPort-string": (_port_as_string, "spec.containers[0].ports[0].containerPort", "expected an integer"),
    "annotation-number": (_annotation_as_number, "spec.annotations.prometheus.kserve.io/port", "expected a string"),
    "container-name-missing": (_container_without_name, "spec.containers[0]", "required field 'name'"),
    "probe-typo": (_probe_typo, "spec.containers[0].readinessProbe.httpGET", "did you mean 'httpGet'"),
    "unknown-apiVersion": (_unknown_kind, "apiVersion", "not a kind this check knows"),
    "status": (_status_in_manifest, "status", "set by the cluster"),
}


@pytest.fixture(scope="module")
def report(kserve_python, tmp_path_factory) -> dict:
    """One validator run over the manifests and the negative cases: {file name: [findings]}."""
    by_file = {path.name: load_documents(path) for path in MANIFESTS}
    folder = tmp_path_factory.mktemp("kserve-negative")
    negative = []
    for case, (build, _, _) in NEGATIVE.items():
        path = folder / f"{case}.yaml"
        path.write_text(yaml.safe_dump(build(by_file), sort_keys=False))
        negative.append(path)
    result = kserve_venv.validate([*MANIFESTS, *negative])
    findings: dict[str, list[dict]] = {}
    for finding in result["findings"]:
        findings.setdefault(Path(finding["file"]).name, []).append(finding)
    return {"findings": findings, "documents": result["documents"], "versions": result["versions"]}


# -- the SDK's schema -------------------------------------------------------------------


def test_every_manifest_matches_the_kserve_sdk(report):
    checked = [d for d in report["documents"] if Path(d["file"]).parent == DEPLOY]
    assert len(checked) == sum(len(load_documents(path)) for path in MANIFESTS), "every document was checked"
    assert {d["kind"] for d in checked} == {"ServingRuntime", "InferenceService", "Secret", "ServiceAccount"}
    runtimes = {Path(d["file"]).name for d in checked if d["kind"] == "ServingRuntime"}
    assert runtimes == {"servingruntime.yaml", "servingruntime-cpu.yaml"}, runtimes  # the GPU and the CPU image's
    problems = [f"{path.name} doc {f['document']} {f['path']}: {f['message']}"
                for path in MANIFESTS for f in report["findings"].get(path.name, [])]  # fmt: skip
    assert not problems, f"against kserve {report['versions']['kserve']}:\n" + "\n".join(problems)


@pytest.mark.parametrize("case", list(NEGATIVE))
def test_a_mistake_is_a_finding(report, case):
    _, path, words = NEGATIVE[case]
    findings = report["findings"].get(f"{case}.yaml", [])
    assert any(f["path"] == path and words in f["message"] for f in findings), findings
