"""LoRA adapters at run time on the real stack (issue 31; test_lora's, conftest's `lora_triton`): an
adapter made with peft at test time is loaded through the frontend's admin-keyed route while other
requests run, serves with vLLM-offline parity (conftest's `lora_reference`, the run test_lora shares),
is listed (by a second frontend within its model-list TTL too), keeps its running requests through
an unload, then gives 404; a resolver folder serves an unknown name on first use; bad adapters are
400s and the engine serves on."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import GREEDY, PROMPTS
from tests.lora_adapter import ADAPTER, LORA_BASE, RUNTIME_ADAPTER

pytestmark = pytest.mark.lora  # `make lora-test`: test_lora's stack

ADMIN_KEY = "lora-admin"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
RESOLVED = "smollm2-lora-resolved"


@pytest.fixture(scope="module")
def admin(lora_triton, tmp_path_factory):
    """A frontend with the admin key; `lora_frontend` is the second replica."""
    from tests.servers import frontend_up

    env = {"KSERVE_OPENAI_ROUTE_PREFIX": "openai", "TRITON_LLM_ADMIN_KEY": ADMIN_KEY}
    with frontend_up(lora_triton.grpc_url, tmp_path_factory.mktemp("lora-admin") / "frontend.log", env=env) as server:
        yield server


def control(frontend, route: str, body: dict) -> requests.Response:
    return requests.post(f"{frontend.url}/openai/v1/{route}", json=body, headers=ADMIN, timeout=120)


def completion(frontend, model: str, prompt: str, **extra) -> requests.Response:
    body = {"model": model, "prompt": prompt, **GREEDY, **extra}
    return requests.post(f"{frontend.url}/openai/v1/completions", json=body, headers=ADMIN, timeout=120)


def listed(frontend) -> dict[str, str | None]:
    data = requests.get(f"{frontend.url}/openai/v1/models", headers=ADMIN, timeout=10).json()["data"]
    return {m["id"]: m.get("parent") for m in data}


def test_an_adapter_loaded_while_requests_run_serves_with_vllm_offline_parity_then_unloads(
    admin, lora_frontend, runtime_adapter, lora_reference
):
    with ThreadPoolExecutor(3) as pool:
        running = [pool.submit(completion, admin, LORA_BASE, p) for p in PROMPTS]
        r = control(admin, "load_lora_adapter", {"lora_name": RUNTIME_ADAPTER, "lora_path": str(runtime_adapter)})
        assert r.status_code == 200 and r.text == f"Success: LoRA adapter '{RUNTIME_ADAPTER}' added successfully."
        assert all(run.result().status_code == 200 for run in running)
    assert listed(admin)[RUNTIME_ADAPTER] == LORA_BASE  # at once on the frontend that loaded it
    want = [lora_reference["runtime"][i]["text"] for i in range(2)]
    for other in ("lora", "base"):  # neither the declared adapter's output nor the base model's
        assert want != [lora_reference[other][i]["text"] for i in range(2)]
    for i in range(2):
        r = completion(admin, RUNTIME_ADAPTER, PROMPTS[i])
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["text"] == want[i]
    deadline = time.monotonic() + 7  # the other replica: within its models_ttl_s (5 s)
    while RUNTIME_ADAPTER not in listed(lora_frontend) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert listed(lora_frontend)[RUNTIME_ADAPTER] == LORA_BASE

    # Unloaded under a running request: that request finishes with the adapter, new ones get 404.
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(completion, admin, RUNTIME_ADAPTER, PROMPTS[0], max_tokens=100, ignore_eos=True)
        time.sleep(1.0)
        r = control(admin, "unload_lora_adapter", {"lora_name": RUNTIME_ADAPTER})
        assert r.status_code == 200 and r.text == f"Success: LoRA adapter '{RUNTIME_ADAPTER}' removed successfully."
        r = completion(admin, RUNTIME_ADAPTER, PROMPTS[0])
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        finished = long.result()
    assert finished.status_code == 200 and finished.json()["usage"]["completion_tokens"] == 100
    assert RUNTIME_ADAPTER not in listed(admin)
    r = control(admin, "unload_lora_adapter", {"lora_name": RUNTIME_ADAPTER})
    assert r.status_code == 404 and r.json()["error"]["param"] == "lora_name"


def test_a_resolver_folder_serves_an_unknown_name_on_first_use(
    admin, runtime_adapter, runtime_lora_dirs, lora_reference
):
    shutil.copytree(runtime_adapter, runtime_lora_dirs[1] / RESOLVED)
    r = completion(admin, RESOLVED, PROMPTS[0])
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == lora_reference["runtime"][0]["text"] and r.json()["model"] == RESOLVED
    assert listed(admin)[RESOLVED] == LORA_BASE
    assert completion(admin, "smollm2-lora-nowhere", PROMPTS[0]).status_code == 404


def test_bad_adapters_are_400s_naming_the_problem_and_the_engine_serves_on(admin, runtime_lora_dirs, lora_reference):
    allowed = runtime_lora_dirs[0]
    (allowed / "empty").mkdir(parents=True, exist_ok=True)
    for body, param, words in [
        ({"lora_name": "x", "lora_path": "/etc"}, "lora_path", "not inside a folder adapters may be loaded from"),
        ({"lora_name": "x", "lora_path": str(allowed / "empty")}, "lora_path", "holds no adapter_config.json"),
        ({"lora_name": ADAPTER, "lora_path": str(allowed)}, "lora_name", "has already been loaded"),
        ({"lora_name": LORA_BASE, "lora_path": str(allowed)}, "lora_name", "conflicts with a served base model"),
        ({"lora_name": "x", "lora_path": str(allowed), "model": "minilm"}, "model", "allow_runtime_lora_updating"),
    ]:
        r = control(admin, "load_lora_adapter", body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param and words in r.text, r.text
    r = requests.post(f"{admin.url}/openai/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/etc"},
                      timeout=10)  # fmt: skip
    assert r.status_code == 401
    r = completion(admin, LORA_BASE, PROMPTS[0])
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == lora_reference["base"][0]["text"]
