"""deploy/monitoring/: the Grafana dashboard and the KEDA ScaledObject ask only for metrics
the stack exports (the names come from the code: `stats.FAMILIES` and the frontend's
registry), and the ScaledObject has what KEDA requires, aimed at a predictor of deploy/kserve."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from openai_frontend.metrics import FrontendMetrics
from tests.servers import ROOT
from triton_llm.generation import stats

MONITORING = ROOT / "deploy" / "monitoring"
# PromQL's words in our expressions; any other identifier must be a metric we export.
PROMQL = {"sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by", "without",
          "clamp_min"}  # fmt: skip


def exported() -> set[str]:
    """Every series name on the stack's metrics pages: the models' (Triton) and the frontend's."""
    names = stats.series_names()
    suffixes = {"counter": ("_total",), "histogram": stats.HISTOGRAM_SUFFIXES, "gauge": ("",)}
    for family in FrontendMetrics().registry.collect():
        names |= {family.name + s for s in suffixes[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)  # strings first: they may hold any character
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr)) - PROMQL


def test_metric_names_are_read_from_promql():
    expr = 'histogram_quantile(0.99, sum by (le, model_name) (rate(vllm:x_bucket{model_name=~"$m"}[$__rate_interval])))'
    assert metric_names(expr) == {"vllm:x_bucket"}
    assert metric_names("sum(rate(typo_total[5m])) / sum(b)") == {"typo_total", "b"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((MONITORING / "grafana-dashboard.json").read_text())


def test_every_dashboard_query_asks_for_exported_metrics_only(dashboard):
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    # label_values(<metric>, <label>): the metric whose label values fill the variable.
    exprs.append(re.fullmatch(r"label_values\((.+), model_name\)", variables["model_name"]["definition"])[1])
    used = set().union(*map(metric_names, exprs))
    assert used <= exported(), used - exported()
    # It shows the engine metrics: every family of ours appears in some panel.
    assert {f.name for f in stats.FAMILIES} <= {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}


def test_dashboard_panels_are_filtered_by_model_and_quantiles_read_buckets(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["model_name"]["type"] == "query"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            if any(name.startswith(("vllm:", "llm_")) for name in metric_names(expr)):
                assert 'model_name=~"$model_name"' in expr, expr
            if "histogram_quantile" in expr:
                assert "_bucket" in expr and re.search(r"by \([^)]*\ble\b", expr), expr
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_keda_scaled_object_has_what_keda_requires_and_aims_at_a_predictor():
    [scaled] = [d for d in yaml.safe_load_all((MONITORING / "keda-scaledobject.yaml").read_text()) if d]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["kind"] == "ScaledObject"
    assert scaled["metadata"]["name"]
    target = scaled["spec"]["scaleTargetRef"]
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    meta = trigger["metadata"]
    assert meta["serverAddress"].startswith("http") and float(meta["threshold"]) > 0
    assert isinstance(meta["threshold"], str), "KEDA's trigger metadata values are strings"
    assert metric_names(meta["query"]) == {stats.WAITING}
    # KServe's Standard mode names the predictor's Deployment <isvc>-predictor.
    isvcs = {
        doc["metadata"]["name"]
        for path in (ROOT / "deploy" / "kserve").glob("isvc-*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "InferenceService"
    }
    assert target["name"].removesuffix("-predictor") in isvcs and target["kind"] == "Deployment"
    assert f'model_name="{target["name"].removesuffix("-predictor")}"' in meta["query"]
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
