"""KServe's own Python client, `kserve.InferenceRESTClient` (kserve 0.21.0), against a server's v1
and v2 routes: what it answers, as JSON, for tests/integration/test_kserve_client.py.

    python -m tests.kserve_client BASE_URL '<json {"models": {name: [texts]}, "headers": {...}}>'

It runs in a process of its own with the kserve package of tools/kserve_hf_reference.ensure()
on its path, not from the venv: kserve 0.21.0 requires psutil<6 and python-dateutil<3, older
than the venv's (7.2 for vLLM, accelerate and peft; 4.0 for matplotlib), so installing it there
would downgrade both. Its own dependencies that the venv has (httpx, orjson, numpy) are the venv's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(base_url: str, models: dict[str, list[str]], headers: dict | None = None) -> dict:
    """The client's answers from `base_url`, obtained in a subprocess (see the module's docstring)."""
    from tools import kserve_hf_reference

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(kserve_hf_reference.ensure())])}
    plan = json.dumps({"models": models, "headers": headers or {}})
    proc = subprocess.run([sys.executable, "-m", "tests.kserve_client", base_url, plan],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ANSWERS ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"kserve's client failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("ANSWERS "))


def _tensors(response) -> dict[str, dict]:
    return {o.name: {"datatype": o.datatype, "shape": list(o.shape), "data": _plain(o.as_numpy())}
            for o in response.outputs}  # fmt: skip


def _plain(array) -> list:
    return [v.decode() if isinstance(v, bytes) else v for v in array.reshape(-1).tolist()]


async def _ask(base: str, models: dict[str, list[str]], headers: dict) -> dict:
    import numpy as np
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    out: dict = {"v1": {}, "v2": {}}
    async with InferenceRESTClient(RESTConfig(protocol="v1", timeout=120)) as v1:
        out["v1"]["live"] = await v1.is_server_live(base, headers=headers)
        for model, texts in models.items():
            ready = await v1.is_model_ready(base, model, headers=headers)
            answer = await v1.infer(base, {"instances": texts}, model_name=model, headers=headers)
            out["v1"][model] = {"ready": ready, "predictions": answer["predictions"]}
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=120)) as v2:
        out["v2"]["live"] = await v2.is_server_live(base, headers=headers)
        out["v2"]["ready"] = await v2.is_server_ready(base, headers=headers)
        for model, texts in models.items():
            entry = out["v2"][model] = {"ready": await v2.is_model_ready(base, model, headers=headers)}
            array = np.array([[t.encode()] for t in texts], dtype=np.object_)
            as_json = InferInput("text_input", [len(texts), 1], "BYTES", data=texts)
            entry["json"] = _tensors(await v2.infer(base, InferRequest(model, [as_json]), model, headers=headers))
            binary = InferInput("text_input", [len(texts), 1], "BYTES")
            binary.set_data_from_numpy(array, binary_data=True)
            names = list(entry["json"])
            wanted = [RequestedOutput(n, {"binary_data": True}) for n in names]
            request = InferRequest(model, [binary], request_outputs=wanted)
            entry["binary"] = _tensors(await v2.infer(base, request, model, headers=dict(headers)))
    return out


if __name__ == "__main__":
    plan = json.loads(sys.argv[2])
    print("ANSWERS " + json.dumps(asyncio.run(_ask(sys.argv[1], plan["models"], plan["headers"]))))
