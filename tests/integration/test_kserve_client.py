"""KServe's own Python client, `kserve.InferenceRESTClient` (kserve 0.21.0, run by
tests/kserve_client.py in a process of its own: it is not installed in the venv, see there),
against the frontend's KServe routes on the session stack: v1 liveness, readiness and predict
give what a plain request to :predict gives; v2 liveness and readiness hold, and its infer, with
JSON tensors and with binary ones both ways, gets the tensors tritonclient.http gets from
Triton's own port."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tests.integration.test_kserve import ENCODERS, client, infer
from tests.kserve_client import run

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def answers(frontend) -> dict:
    return run(frontend.url, ENCODERS)


def test_v1_predict_through_kserves_client(frontend, answers):
    v1 = answers["v1"]
    assert v1["live"] is True
    for model, texts in ENCODERS.items():
        r = requests.post(f"{frontend.url}/v1/models/{model}:predict", json={"instances": texts}, timeout=60)
        assert r.status_code == 200, r.text
        assert v1[model]["ready"] is True and v1[model]["predictions"] == r.json()["predictions"], model


def test_v2_infer_through_kserves_client_equals_tritons_own_port(triton, answers):
    v2 = answers["v2"]
    assert v2["live"] is True and v2["ready"] is True
    theirs = client(triton.http_url)
    for model, texts in ENCODERS.items():
        assert v2[model]["ready"] is True, model
        want = infer(theirs, model, texts, binary=True)
        for mode in ("json", "binary"):
            got = v2[model][mode]
            assert set(got) == set(want), (model, mode)
            for name, tensor in got.items():
                expected = want[name]
                assert tensor["shape"] == list(expected.shape), (model, mode, name)
                if expected.dtype == np.object_:
                    assert tensor["data"] == [v.decode() for v in expected.reshape(-1)], (model, mode, name)
                else:
                    values = np.asarray(tensor["data"], dtype=expected.dtype)
                    assert np.array_equal(values, expected.reshape(-1)), (model, mode, name)
