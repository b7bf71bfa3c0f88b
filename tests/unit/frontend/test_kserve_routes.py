"""KServe's routes beside OpenAI's (routers/kserve.py), on a fake Triton: with the default prefix and
with KSERVE_OPENAI_ROUTE_PREFIX empty, where GET /v1/models/{m} is both protocols' and nothing else
collides; errors in each route's shape; the v2 probes open and the rest behind the key."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from openai_frontend.app import create_app
from openai_frontend.settings import Settings
from tests.unit.fakes.model_server import FakeTriton


class KServeTriton(FakeTriton):
    async def metadata(self, model: str = "", version: str = "") -> dict[str, Any]:
        if not model:
            return {"name": "triton", "version": "2.51.0", "extensions": ["binary_tensor_data", "statistics"]}
        return {"name": model, "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, -1]}]}

    async def model_ready(self, model: str, version: str = "") -> bool:
        return True

    async def server_ready(self) -> bool:
        return True


def client(prefix: str, key: str | None = None) -> TestClient:
    return TestClient(create_app(Settings(route_prefix=prefix, api_key=key), client=KServeTriton()))


@pytest.mark.parametrize("prefix", ["/openai", ""])
def test_kserve_and_openai_routes_side_by_side(prefix):
    c = client(prefix)
    assert c.get(f"{prefix}/v1/models").json()["object"] == "list"  # OpenAI's list, in either layout
    card = c.get("/v1/models/emb").json()
    if prefix:
        assert card == {"name": "emb", "ready": True}
    else:  # one route for both: OpenAI's card with KServe's fields
        assert card["id"] == "emb" and card["object"] == "model" and card["name"] == "emb" and card["ready"] is True
        assert c.get("/v1/models/nope").json()["error"]["code"] == "model_not_found"  # OpenAI's shape there
    r = c.post("/v1/models/nope:predict", json={"instances": ["a"]})
    assert r.status_code == 404 and "nope" in r.json()["error"]  # KServe's shape, either way
    r = c.post("/v1/models/emb:predict", json={"instances": ["a", "b"]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    assert c.get("/v2").json()["extensions"] == ["binary_tensor_data"]  # what this port serves


def test_v2_probes_are_open_and_the_rest_needs_the_key():
    c = client("/openai", key="k")
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").status_code == 200
    assert c.get("/").json() == {"status": "alive"}  # v1's liveness, as KServe's model server answers it
    for path in ("/v2", "/v2/models/emb", "/v1/models/emb"):
        r = c.get(path)
        assert r.status_code == 401 and isinstance(r.json()["error"], str), path
        assert c.get(path, headers={"Authorization": "Bearer k"}).status_code == 200, path
    r = c.post("/v1/models/emb:predict", json={"instances": "a"}, headers={"Authorization": "Bearer k"})
    assert r.status_code == 400 and r.json()["error"].startswith("instances"), r.text
