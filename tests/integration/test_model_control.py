"""Operator controls on the real stack: a model entry written by make-repo at run time is
loaded, served and unloaded through the frontend's admin routes while requests on another
model run undisturbed and readiness stays 200; an alias (`served_model_name`, the `minilm`
entry of the test repository) is listed, routed and echoed in `model`."""

from __future__ import annotations

import shutil
import threading
from collections import Counter

import numpy as np
import pytest
import requests

from tests.servers import frontend_up
from triton_llm.cli import make_repo

ADMIN = {"Authorization": "Bearer operator-key"}
CLIENT = {"Authorization": "Bearer client-key"}
NEW = "minilm-runtime"
ALIAS = "all-minilm-l6-v2"  # tests/conftest.py gives the `minilm` entry this name too


@pytest.fixture(scope="module")
def operated(triton, tmp_path_factory):
    """A frontend on the session's Triton with a client key and an admin key."""
    with frontend_up(
        triton.grpc_url, tmp_path_factory.mktemp("operated") / "frontend.log",
        env={"KSERVE_OPENAI_ROUTE_PREFIX": "openai"}, args=["--api-key", "client-key", "--admin-key", "operator-key"],
    ) as server:  # fmt: skip
        yield server


def embed(base: str, model: str, headers: dict = CLIENT) -> requests.Response:
    body = {"model": model, "input": ["hello world"]}
    return requests.post(f"{base}/embeddings", json=body, headers=headers, timeout=60)


def listed(base: str) -> list[str]:
    return [m["id"] for m in requests.get(f"{base}/models", headers=CLIENT, timeout=10).json()["data"]]


def test_an_entry_written_at_run_time_is_loaded_served_and_unloaded(operated, test_repository, minilm_dir):
    base = f"{operated.url}/openai/v1"
    entry = test_repository / NEW
    # Meanwhile: requests on another model, and the probes Kubernetes would send.
    seen: Counter = Counter()
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            seen["minilm", embed(base, "minilm").status_code] += 1
            r = requests.get(f"{operated.url}/health/ready", timeout=10)
            seen["ready", r.status_code] += 1
            if r.status_code != 200:  # why, for the assertion's message
                seen["ready", r.status_code, r.text] += 1

    args = ["--model_dir", str(minilm_dir), "--model_name", NEW, "--task", "text_embedding"]
    assert make_repo.main([*args, "--repository", str(test_repository)]) == 0
    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        assert requests.post(f"{base}/models/{NEW}/load", headers=CLIENT, timeout=10).status_code == 401
        r = requests.post(f"{base}/models/{NEW}/load", headers=ADMIN, timeout=600)
        assert r.status_code == 200 and r.json()["id"] == NEW, r.text
        assert NEW in listed(base)  # at once: the load refreshed the model list
        r = embed(base, NEW)
        assert r.status_code == 200 and r.json()["model"] == NEW, r.text
        same = embed(base, "minilm").json()["data"][0]["embedding"]
        assert np.allclose(r.json()["data"][0]["embedding"], same, atol=1e-5)  # the same weights

        r = requests.post(f"{base}/models/{NEW}/unload", headers=ADMIN, timeout=300)
        assert (r.status_code, r.json()) == (200, {"status": "success", "model": NEW})
        r = embed(base, NEW)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", r.text
        assert NEW not in listed(base)
    finally:
        stop.set()
        worker.join()
        requests.post(f"{base}/models/{NEW}/unload", headers=ADMIN, timeout=300)
        shutil.rmtree(entry, ignore_errors=True)  # the session's repository as it was
    assert set(seen) == {("minilm", 200), ("ready", 200)} and seen["minilm", 200] >= 2, seen
    assert requests.get(f"{operated.url}/health/ready", timeout=10).status_code == 200


def test_what_the_control_routes_refuse(operated):
    base = f"{operated.url}/openai/v1"
    r = requests.post(f"{base}/models/no-such-model/load", headers=ADMIN, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    for name in ("a%2Fb", "%2e%2e", "..%2Fminilm"):
        r = requests.post(f"{base}/models/{name}/unload", headers=ADMIN, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["param"] == "model", (name, r.text)
    assert embed(base, "minilm").status_code == 200  # nothing was unloaded
    assert embed(base, "minilm", ADMIN).status_code == 200  # the admin key opens the client routes


def test_an_alias_is_listed_routed_and_answered_under_its_name(frontend):
    base = f"{frontend.url}/openai/v1"
    assert {"minilm", ALIAS} <= set(listed(base))
    assert requests.get(f"{base}/models/{ALIAS}", timeout=10).json()["id"] == ALIAS
    by_alias, by_name = embed(base, ALIAS), embed(base, "minilm")
    assert by_alias.status_code == 200 and by_alias.json()["model"] == ALIAS, by_alias.text
    assert by_name.json()["model"] == "minilm"
    assert by_alias.json()["data"] == by_name.json()["data"]
