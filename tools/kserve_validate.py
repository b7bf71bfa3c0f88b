"""Check Kubernetes manifests against KServe's Python SDK models, strictly; print JSON findings.

    <kserve venv>/bin/python -I tools/kserve_validate.py deploy/kserve/*.yaml

Runs in the separate venv of tools/kserve_venv.py (kserve's generated models and the
kubernetes client they refer to), never in the project's. Every YAML document is walked
with the model class its apiVersion/kind names (kserve.models.V1beta1InferenceService,
kubernetes.client.V1Secret, ...), using each class's `openapi_types` and `attribute_map`:

- a key the class does not define is a finding (the SDK's deserializer drops unknown keys
  silently, and so would a cluster without strict field validation: `storageUrl` would
  become an InferenceService without a model);
- a value of the wrong primitive type (`containerPort: "9000"`, an annotation that YAML
  read as a number, `autoSelect: "false"`), or a mapping where a list belongs, is a finding;
- each object is then built with its class, client-side validation on, so the fields the
  SDK marks required (a container's `name`, a port's `containerPort`, ...) are checked;
- a field whose type neither SDK defines is checked against KServe's CRD schema copied in
  tools/crds/ (a ServingRuntime's workerSpec), else reported, not skipped; a kind with no SDK
  model at all (LLMInferenceService) is checked against its CRD alone (tools/crd_schema.py),
  its metadata with the kubernetes client's V1ObjectMeta.

Output: {"findings": [{"file", "document", "path", "message"}], "documents": [{"file",
"document", "apiVersion", "kind", "name"}], "versions": {...}}. Exit status 0 when it ran
(findings or not), 2 on bad usage.
"""

from __future__ import annotations

import datetime
import difflib
import importlib.metadata
import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import yaml


def _sibling(name: str) -> types.ModuleType:
    """A module beside this file (run with -I: its folder is not on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


crd_schema = _sibling("crd_schema")

# apiVersion/kind -> model class name (kserve.models first, then kubernetes.client).
KINDS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
}
# Set by the cluster, never in a manifest.
SERVER_SET = {"status"}
REQUIRED = re.compile(r"Invalid value for `(\w+)`, must not be `None`")


def load_models() -> tuple[types.ModuleType, types.ModuleType]:
    """kserve.models and kubernetes.client.models, without running kserve/__init__.py.

    kserve's package __init__ imports its model server (FastAPI, gRPC, pandas, ...), which
    the venv deliberately lacks; its generated models need only `kserve.configuration`
    (urllib3, six). A bare package object pointing at the installed folder lets the
    submodules import normally.
    """
    if "kserve" not in sys.modules:
        spec = importlib.util.find_spec("kserve")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("kserve_validate: the kserve package is not installed in this Python")
        package = types.ModuleType("kserve")
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__ = spec.origin
        sys.modules["kserve"] = package
    import kserve.models as kserve_models
    import kubernetes.client.models as k8s_models

    return kserve_models, k8s_models


class Validator:
    def __init__(self):
        self.kserve_models, self.k8s_models = load_models()
        from kserve.configuration import Configuration as KServeConfiguration
        from kubernetes.client.configuration import Configuration as K8sConfiguration

        self.configs = {"kserve": KServeConfiguration(), "kubernetes": K8sConfiguration()}
        for config in self.configs.values():
            config.client_side_validation = True
        self.findings: list[dict] = []
        self._where: dict = {}
        self._crd: dict | None = None  # the current document's CRD schema, where tools/crds/ has one

    # -- type resolution -----------------------------------------------------------------

    def model_class(self, name: str):
        return getattr(self.kserve_models, name, None) or getattr(self.k8s_models, name, None)

    def finding(self, path: str, message: str) -> None:
        self.findings.append({**self._where, "path": path, "message": message})

    # -- the walk ------------------------------------------------------------------------

    def check(self, value, type_name: str, path: str):
        """The value built as `type_name` (None when it was not valid; findings recorded)."""
        if value is None:
            return None  # a required field left empty is caught when the parent is built
        if type_name.startswith("list[") and type_name.endswith("]"):
            if not isinstance(value, list):
                return self.wrong(value, f"a list of {type_name[5:-1]}", path)
            return [self.check(item, type_name[5:-1], f"{path}[{i}]") for i, item in enumerate(value)]
        match = re.fullmatch(r"dict\((\w+), (.+)\)|dict\[(\w+), (.+)\]", type_name)  # kserve's form, kubernetes'
        if match:
            item_type = match.group(2) or match.group(4)
            if not isinstance(value, dict):
                return self.wrong(value, f"a mapping of {item_type}", path)
            built = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.finding(f"{path}.{key}", f"key {key!r} is a {type(key).__name__}, not a string")
                built[str(key)] = self.check(item, item_type, f"{path}.{key}")
            return built
        if type_name in PRIMITIVES:
            expected, description = PRIMITIVES[type_name]
            if expected(value):
                return value
            return self.wrong(value, description, path)
        cls = self.model_class(type_name)
        node = crd_schema.at(self._crd, path) if cls is None and self._crd else None
        if node is not None:
            crd_schema.check(value, node, path, self.finding)
            return value
        if cls is None:
            self.finding(path, f"type {type_name} is in neither the kserve nor the kubernetes SDK: cannot check it")
            return None
        return self.build(value, cls, path)

    def build(self, value, cls, path: str):
        if not isinstance(value, dict):
            return self.wrong(value, f"a mapping ({cls.__name__})", path)
        by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
        kwargs = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            attr = by_json.get(key)
            if attr is None:
                close = difflib.get_close_matches(str(key), list(by_json), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.finding(where, f"unknown field {key!r} for {cls.__name__}{hint}")
                continue
            if not path and key in SERVER_SET:
                self.finding(where, f"{key!r} is set by the cluster, not in a manifest")
                continue
            # An invalid child is passed on as INVALID (not None): the parent's own required
            # fields are still checked, without a second finding for the child.
            kwargs[attr] = self.check(item, cls.openapi_types[attr], where)
        config = self.configs["kserve" if cls.__module__.startswith("kserve.") else "kubernetes"]
        try:
            return cls(**kwargs, local_vars_configuration=config)
        except (ValueError, TypeError) as exc:
            message = str(exc)
            missing = REQUIRED.search(message)
            if missing and missing.group(1) in cls.attribute_map:
                message = f"required field {cls.attribute_map[missing.group(1)]!r} of {cls.__name__} is missing"
            self.finding(path or "<document>", message)
            return INVALID

    def wrong(self, value, description: str, path: str):
        shown = json.dumps(value, default=str)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        self.finding(path, f"expected {description}, got {type(value).__name__} {shown}")
        return INVALID

    # -- documents -----------------------------------------------------------------------

    def document(self, doc, file: str, index: int) -> dict | None:
        self._where = {"file": file, "document": index}
        if not isinstance(doc, dict):
            self.finding("<document>", f"expected a mapping, got {type(doc).__name__}")
            return None
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        metadata = doc.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        summary = {"file": file, "document": index, "apiVersion": api_version, "kind": kind, "name": name}
        class_name = KINDS.get((api_version, kind))
        self._crd = crd_schema.schema(api_version, kind)
        if class_name is None and self._crd is not None:  # no SDK model: the CRD alone
            for key, value in doc.items():
                if key in SERVER_SET:
                    self.finding(key, f"{key!r} is set by the cluster, not in a manifest")
                elif key == "metadata":
                    self.check(value, "V1ObjectMeta", key)
                else:
                    crd_schema.check({key: value}, {**self._crd, "required": []}, "", self.finding)
            if not name:
                self.finding("metadata.name", "every object needs a name")
            return summary
        if class_name is None:
            known = ", ".join(f"{v}/{k}" for v, k in [*KINDS, *crd_schema.SCHEMAS])
            self.finding("apiVersion", f"{api_version}/{kind} is not a kind this check knows ({known})")
            return summary
        cls = self.model_class(class_name)
        self.build(doc, cls, "")
        if not name:
            self.finding("metadata.name", "every object needs a name")
        return summary


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


PRIMITIVES = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (_is_int, "an integer"),
    "float": (lambda v: _is_int(v) or isinstance(v, float), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "object": (lambda v: True, "anything"),  # int-or-string, free-form JSON
    "date": (lambda v: isinstance(v, (str, datetime.date)), "a date"),
    "datetime": (lambda v: isinstance(v, (str, datetime.datetime)), "a date-time"),
}


class _Invalid:
    def __repr__(self):
        return "<invalid>"


INVALID = _Invalid()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    validator = Validator()
    documents = []
    for file in argv:
        try:
            with open(file, encoding="utf-8") as f:
                docs = list(yaml.safe_load_all(f))
        except (OSError, yaml.YAMLError) as exc:
            validator._where = {"file": file, "document": None}
            validator.finding("<file>", f"cannot read: {exc}")
            continue
        index = 0
        for doc in docs:
            if doc is None:  # an empty document (a leading or trailing ---)
                continue
            summary = validator.document(doc, file, index)
            if summary:
                documents.append(summary)
            index += 1
    versions = {dist: importlib.metadata.version(dist) for dist in ("kserve", "kubernetes")}
    print(json.dumps({"findings": validator.findings, "documents": documents, "versions": versions}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
