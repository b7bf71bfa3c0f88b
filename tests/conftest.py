from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lora_adapter import ADAPTER, LORA_BASE, LORA_SETTINGS, RUNTIME_ADAPTER, RUNTIME_SEED, runtime_settings
from tests.servers import ROOT, make_repository, start_triton

# Greedy runs must compare like with like: prefix caching would let a repeated prompt skip
# part of its prefill, which changes the arithmetic (and can flip a close bf16 argmax).
TEST_ENGINE_OVERRIDES = {"enable_prefix_caching": False}
HF_OVERRIDES = {"dtype": "float32", "max_num_seqs": 16}
# Reasoning output (test_tools): Qwen3's parser, thinking off unless a request turns it on, so
# that the other tests' chats read as before. The demo's template and hermes tool parser stay.
REASONING = {"reasoning_parser": "qwen3", "default_chat_template_kwargs": {"enable_thinking": False}}

# tools/vllm_compat.sh's run: an older vLLM serves smollm2, which has no reasoning parser there.
VLLM_COMPAT = os.environ.get("TRITON_LLM_VLLM_COMPAT") == "1"

# The tiny vision-language model's entry (test_images): make-repo's flags, vLLM's engine arguments among them.
VLM = "idefics3-tiny"
# A 64 MiB KV cache (4 sequences of 1,024 tokens need 16 MiB), not the CPU default's 2 GiB: the session's memory.
VLM_FLAGS = ["--dtype", "float32", "--max_length", "1024", "--max-num-seqs", "4", "--no-enable-prefix-caching",
             "--limit-mm-per-prompt", '{"image": 2}', "--kv-cache-memory-bytes", str(64 << 20)]  # fmt: skip
GREEDY = {"temperature": 0.0, "max_tokens": 40}
BEAM_SEARCH = {"beam_width": 2, "max_tokens": 8, "temperature": 0.0}  # vLLM's BeamSearchParams
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a land far away,",
]
CHAT = [{"role": "user", "content": "Write a haiku about the sea."}]


@pytest.fixture(scope="session")
def model_dir() -> Path:
    from tools.prepare_model import prepare

    path = prepare(ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct").resolve()
    return _readable_by_transformers_4(path) if VLLM_COMPAT else path


def _readable_by_transformers_4(model: Path) -> Path:
    """A copy (hard links) of `model` whose tokenizer_config.json names a class that the older
    vLLM's transformers 4 has: transformers 5 saved `TokenizersBackend`."""
    copy = ROOT / ".cache" / "vllm-compat" / "models" / model.name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(model, copy, copy_function=os.link)
    config = copy / "tokenizer_config.json"
    settings = json.loads(config.read_text())
    config.unlink()  # a link to the original: write a file of its own
    config.write_text(json.dumps({**settings, "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
    return copy


@pytest.fixture(scope="session")
def t5_dir(model_dir, tmp_path_factory) -> Path:
    """A tiny T5 with random weights: the text2text path (no real T5 is available offline)."""
    from transformers import AutoTokenizer

    from tests.tiny_models import build_tiny_t5

    return build_tiny_t5(tmp_path_factory.mktemp("t5-tiny"), AutoTokenizer.from_pretrained(model_dir))


@pytest.fixture(scope="session")
def vlm_dir(model_dir, tmp_path_factory) -> Path:
    """A tiny Idefics3 vision-language model with random weights on SmolLM2's tokenizer (tests/tiny_vlm.py)."""
    from tests.tiny_vlm import build_tiny_idefics3

    return build_tiny_idefics3(tmp_path_factory.mktemp("vlm") / "idefics3-tiny", model_dir)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from tools.prepare_model import prepare_minilm

    return prepare_minilm(ROOT / ".cache" / "models" / "all-MiniLM-L6-v2").resolve()


@pytest.fixture(scope="session")
def bert_dirs(model_dir, tmp_path_factory) -> dict[str, Path]:
    """Tiny BERTs with random weights, one per encoder task (no small real ones offline)."""
    from transformers import AutoTokenizer

    from tests.tiny_models import BERT_HEADS, build_tiny_bert

    source = AutoTokenizer.from_pretrained(model_dir)
    root = tmp_path_factory.mktemp("bert-tiny")
    return {task: build_tiny_bert(root / task, source, task) for task in BERT_HEADS}


@pytest.fixture(scope="session")
def lora_adapter(model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter of the demo model (peft, random B weights), served by LORA_BASE (test_lora)."""
    from tests.lora_adapter import build_adapter

    return build_adapter(model_dir, tmp_path_factory.mktemp("lora") / "adapter")


@pytest.fixture(scope="session")
def runtime_lora_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """LORA_BASE's folders for adapters at run time (test_lora_runtime): the allowed one, the resolver's."""
    root = tmp_path_factory.mktemp("lora-runtime")
    return root / "allowed", root / "resolver"


@pytest.fixture(scope="session")
def runtime_adapter(model_dir, runtime_lora_dirs) -> Path:
    """An adapter unlike `lora_adapter` (another seed), in the allowed folder: loaded through the API."""
    from tests.lora_adapter import build_adapter

    return build_adapter(model_dir, runtime_lora_dirs[0] / RUNTIME_ADAPTER, seed=RUNTIME_SEED)


@pytest.fixture(scope="session")
def lora_reference(model_dir, lora_adapter, runtime_adapter, lora_triton) -> dict[str, list[dict]]:
    """vLLM offline on an engine like LORA_BASE, in one run (a vLLM start is ~50 s): PROMPTS then CHAT
    with no adapter ("base") and with `lora_adapter` ("lora"; test_lora), and the first two PROMPTS with
    `runtime_adapter` ("runtime"; test_lora_runtime), each adapter with the id the served engine gives it."""
    lora = {"name": ADAPTER, "path": str(lora_adapter)}
    runtime = {"name": RUNTIME_ADAPTER, "path": str(runtime_adapter)}
    plain = [{"prompt": p, "sampling": GREEDY} for p in PROMPTS] + [{"messages": CHAT, "sampling": GREEDY}]
    later = [{"prompt": p, "sampling": GREEDY, "lora": runtime} for p in PROMPTS[:2]]
    out = vllm_offline(
        {"model": str(model_dir), **TEST_ENGINE_OVERRIDES, **LORA_SETTINGS, "lora_modules": [lora]},
        plain + [{**r, "lora": lora} for r in plain] + later,
    )
    n = len(plain)
    return {"base": out[:n], "lora": out[n : 2 * n], "runtime": out[2 * n :]}


@pytest.fixture(scope="session")
def test_repository(model_dir, request, tmp_path_factory) -> Path:
    from triton_llm.cli import make_repo

    repository = tmp_path_factory.mktemp("repo")
    if VLLM_COMPAT:  # tools/vllm_compat.sh: the vLLM model alone, on the oldest vLLM we claim
        no_tools = {"tool_call_parser": None, "enable_auto_tool_choice": False}  # refused there (vllm_compat)
        make_repository(repository, {"smollm2": {"model": str(model_dir), **TEST_ENGINE_OVERRIDES, **no_tools}})
        return repository
    t5_dir, minilm_dir, bert_dirs = map(request.getfixturevalue, ("t5_dir", "minilm_dir", "bert_dirs"))
    # Written by the generator, as a user would: `auto` (vLLM has no T5) resolves to transformers.
    overrides = ["--dtype", HF_OVERRIDES["dtype"], "--max-num-seqs", str(HF_OVERRIDES["max_num_seqs"])]
    t5 = ["--model_dir", str(t5_dir), "--model_name", "t5-tiny", "--repository", str(repository), *overrides]
    assert make_repo.main(t5) == 0
    # A vision-language model, as a user would add one: make-repo recognises image-text-to-text and
    # `auto` picks vLLM (test_images); float32 for parity, two images per prompt at most.
    vlm = ["--model_dir", str(request.getfixturevalue("vlm_dir")), "--model_name", VLM, "--repository", str(repository)]
    assert make_repo.main([*vlm, *VLM_FLAGS]) == 0
    make_repository(
        repository,
        {
            "smollm2": {"model": str(model_dir), **TEST_ENGINE_OVERRIDES, **REASONING},
            # float32: greedy output must equal transformers' `generate` token for token,
            # and in bfloat16 a batch's arithmetic differs from a lone request's.
            "smollm2-hf": {"model": str(model_dir), **HF_OVERRIDES, **REASONING},
            # The dtype a CPU with bf16 instructions serves: one request at a time, still transformers' own
            # greedy output (test_transformers; skipped on other CPUs).
            "smollm2-hf-bf16": {"model": str(model_dir), **HF_OVERRIDES, "dtype": "bfloat16"},
            # Served under a second name too (served_model_name: test_model_control).
            "minilm": {"model": str(minilm_dir), "served_model_name": ["minilm", "all-minilm-l6-v2"]},
            # MiniLM was not trained for truncation; this entry only lets `dimensions` through.
            "minilm-matryoshka": {"like": "minilm", "model": str(minilm_dir), "is_matryoshka": True},
            # The encoder tasks, each with some of KServe's options; float32 so that
            # probabilities compare with transformers' pipelines to 1e-5.
            "bert-fill-mask": {
                "like": "minilm",
                "model": str(bert_dirs["fill_mask"]),
                "dtype": "float32",
                "return_probabilities": True,
            },
            "bert-token-cls": {
                "like": "minilm",
                "model": str(bert_dirs["token_classification"]),
                "dtype": "float32",
                "return_probabilities": True,
                "tensor_input_names": ["input_ids", "attention_mask"],
            },
            "bert-seq-cls": {"like": "minilm", "model": str(bert_dirs["sequence_classification"]), "dtype": "float32"},
            # KServe's return_probabilities on sequence classification (test_kserve_reference).
            "bert-seq-cls-probs": {
                "like": "minilm",
                "model": str(bert_dirs["sequence_classification"]),
                "dtype": "float32",
                "return_probabilities": True,
            },
            # One label: resolved to the cross_encoder task (rerank and score, test_rerank).
            "bert-cross-encoder": {"like": "minilm", "model": str(bert_dirs["cross_encoder"]), "dtype": "float32"},
            "minilm-bounded": {"like": "minilm", "model": str(minilm_dir)},
        },
    )
    # Load shedding of an encoder at small cost (test_overload): a queue of 2 requests.
    bounded = repository / "minilm-bounded" / "config.pbtxt"
    bounded.write_text(re.sub(r"max_queue_size: \d+", "max_queue_size: 2", bounded.read_text()))
    return repository


@pytest.fixture(scope="session")
def triton(test_repository, tmp_path_factory):
    """One real tritonserver for the whole session."""
    server = start_triton(test_repository, tmp_path_factory.mktemp("logs") / "tritonserver.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lora_triton(model_dir, lora_adapter, runtime_lora_dirs, minilm_dir, tmp_path_factory):
    """A stack of its own for test_lora and test_lora_runtime: the model serving a LoRA adapter
    (vLLM with LoRA on is ~1.6x slower on this CPU even for requests without one), beside an encoder
    that takes no adapters. Apart from the session's, it loads and runs in make test's second
    process (tests/integration/conftest.py), beside the session stack's tests, not after them."""
    repository = make_repository(
        tmp_path_factory.mktemp("lora-repo"),
        {
            LORA_BASE: {
                "like": "smollm2",
                "model": str(model_dir),
                "served_model_name": LORA_BASE,  # not the demo entry's "smollm2"
                **TEST_ENGINE_OVERRIDES,
                **LORA_SETTINGS,
                "lora_modules": [{"name": ADAPTER, "path": str(lora_adapter)}],
                **runtime_settings(*runtime_lora_dirs),  # test_lora_runtime
            },
            "minilm": {"model": str(minilm_dir)},
        },
    )
    server = start_triton(repository, tmp_path_factory.mktemp("lora-logs") / "tritonserver.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lora_frontend(lora_triton, tmp_path_factory):
    """The OpenAI frontend on `lora_triton`, default route prefix (/openai)."""
    from tests.servers import frontend_up

    log = tmp_path_factory.mktemp("lora-frontend") / "frontend.log"
    with frontend_up(lora_triton.grpc_url, log, env={"KSERVE_OPENAI_ROUTE_PREFIX": "openai"}) as server:
        yield server


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def vllm_reference(model_dir, triton) -> list[dict]:
    """vLLM's offline greedy outputs for PROMPTS then CHAT, then BEAM_SEARCH's beams (started
    after Triton is up, so the two engines never compete for the cores while loading)."""
    settings = {"model": str(model_dir), **TEST_ENGINE_OVERRIDES}
    requests = [{"prompt": p, "sampling": GREEDY} for p in PROMPTS]
    requests.append({"messages": CHAT, "sampling": GREEDY})
    requests.append({"prompt": PROMPTS[0], "beam": BEAM_SEARCH})  # test_client_fields
    return vllm_offline(settings, requests)


def vllm_offline(settings: dict, requests: list[dict]) -> list[dict]:
    """tests/vllm_reference.py's outputs for `requests` on an engine with `settings` (model.json's keys)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vllm_reference.py"), json.dumps(settings), json.dumps(requests)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    for line in proc.stdout.splitlines():
        if line.startswith("REFERENCE_JSON "):
            return json.loads(line.removeprefix("REFERENCE_JSON "))
    raise RuntimeError(f"reference run failed ({proc.returncode}):\n{proc.stderr[-5000:]}")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (tests/postgres.py) for the Responses API's shared store: its URL."""
    from tests.postgres import PostgresServer

    server = PostgresServer().start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def frontend(triton, tmp_path_factory):
    """The OpenAI frontend on the session's Triton, default route prefix (/openai)."""
    from tests.servers import frontend_up

    folder = tmp_path_factory.mktemp("frontend")
    # The Responses API's store: a SQLite file of the session's, not the checkout's cache.
    env = {"KSERVE_OPENAI_ROUTE_PREFIX": "openai", "TRITON_LLM_RESPONSES_STORE": f"sqlite:///{folder / 'r.sqlite'}"}
    with frontend_up(triton.grpc_url, folder / "frontend.log", env=env) as server:
        yield server
