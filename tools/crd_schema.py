"""A manifest checked against a CustomResourceDefinition's structural schema (openAPIV3Schema), strictly.

For the kinds and fields KServe's Python SDK has no model for: LLMInferenceService (the SDK
0.21.0 ships the class but not its spec's), and a ServingRuntime's `workerSpec` (the SDK's
V1alpha1ServingRuntimeSpec names a V1alpha1WorkerSpec it does not define). The schemas are
KServe's own CRDs, copied into tools/crds/ (see its README for the commit).

What the API server's validation would refuse, and what it would silently prune: a key the
schema does not define (unless `x-kubernetes-preserve-unknown-fields`), a value of the wrong
type, a value outside an `enum`, a missing `required` field. No CEL rules, formats or
quantities. Runs in the kserve venv (tools/kserve_validate.py), standard library only.
"""

from __future__ import annotations

import difflib
import gzip
import json
from collections.abc import Callable
from pathlib import Path

CRDS = Path(__file__).resolve().parent / "crds"
LLMISVC = "serving.kserve.io_llminferenceservices.json.gz"
# apiVersion/kind -> (file in tools/crds, version in it).
SCHEMAS = {
    ("serving.kserve.io/v1alpha1", "LLMInferenceService"): (LLMISVC, "v1alpha1"),
    ("serving.kserve.io/v1alpha2", "LLMInferenceService"): (LLMISVC, "v1alpha2"),
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): ("serving.kserve.io_servingruntimes.json.gz", "v1alpha1"),
}
TYPES = {
    "string": (lambda v: isinstance(v, str), "a string"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "boolean": (lambda v: isinstance(v, bool), "true or false"),
    "object": (lambda v: isinstance(v, dict), "a mapping"),
    "array": (lambda v: isinstance(v, list), "a list"),
}
_loaded: dict[str, dict] = {}


def schema(api_version: str, kind: str) -> dict | None:
    """The version's openAPIV3Schema, or None when no CRD here defines the kind."""
    where = SCHEMAS.get((api_version, kind))
    if where is None:
        return None
    file, version = where
    if file not in _loaded:
        with gzip.open(CRDS / file, "rt", encoding="utf-8") as f:
            _loaded[file] = json.load(f)
    return _loaded[file]["versions"][version]["openAPIV3Schema"]


def at(root: dict, path: str) -> dict | None:
    """The subschema at a dotted path (`spec.workerSpec`, `spec.containers[0]`), or None."""
    node = root
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        node = node.get("items") if part.startswith("[") else (node.get("properties") or {}).get(part)
        if node is None:
            return None
    return node


def check(value, node: dict, path: str, finding: Callable[[str, str], None]) -> None:
    """Report through `finding(path, message)` every way `value` breaks the schema `node`."""
    if value is None:
        if not node.get("nullable"):
            finding(path, "null where the schema wants a value")
        return
    if node.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, (int, str)) and not isinstance(value, bool)):
            finding(path, f"expected an integer or a string, got {type(value).__name__}")
        return
    kind = node.get("type")
    if kind in TYPES and not TYPES[kind][0](value):
        finding(path, f"expected {TYPES[kind][1]}, got {type(value).__name__} {json.dumps(value, default=str)[:60]}")
        return
    if "enum" in node and value not in node["enum"]:
        finding(path, f"{value!r} is not one of {node['enum']}")
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            check(item, node["items"], f"{path}[{i}]", finding)
    if isinstance(value, dict):
        _check_object(value, node, path, finding)


def _check_object(value: dict, node: dict, path: str, finding: Callable[[str, str], None]) -> None:
    properties = node.get("properties")
    extra = node.get("additionalProperties")
    for key in node.get("required", []):
        if key not in value:
            finding(path or "<document>", f"required field {key!r} is missing")
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if properties and key in properties:
            check(item, properties[key], where, finding)
        elif isinstance(extra, dict):
            check(item, extra, where, finding)
        elif properties and not node.get("x-kubernetes-preserve-unknown-fields") and extra is not True:
            close = difflib.get_close_matches(str(key), list(properties), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            finding(where, f"unknown field {key!r}{hint}")
