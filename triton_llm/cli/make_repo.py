"""Write a Triton model repository entry from KServe's Hugging Face runtime arguments.

    python -m triton_llm.cli.make_repo --model_id hf://Qwen/Qwen2.5-0.5B-Instruct --model_name qwen
    python -m triton_llm.cli.make_repo --model_dir ./t5-small --model_name t5 --backend huggingface
    python -m triton_llm.cli.make_repo --model_name NAME --model_dir /mnt/models --serve --host 0.0.0.0   # KServe

The arguments keep the names and meanings of KServe's huggingfaceserver (`--model_id`,
`--model_dir`, `--model_revision`, `--tokenizer_revision`, `--dtype`, `--task`, `--backend`,
`--max_length`, `--trust_remote_code` and the encoder options); vLLM's engine arguments
(`--max-num-seqs 32`, `--gpu-memory-utilization 0.8`, ...) pass through to model.json as
they do there. The entry is `<repository>/<model_name>/{config.pbtxt, 1/model.json, 1/model.py}`
for the runner the task needs; task and backend are resolved by the same code that loads the
model (triton_llm.tasks), so an invalid combination fails here, naming its argument, before
anything is written.

`--model_id` downloads with huggingface_hub (HF_TOKEN and HF_ENDPOINT honoured, progress
bars, interrupted downloads resume): into the hub cache, and model.json names the id at the
commit downloaded, or with `--download_dir` into that folder, which model.json then names.
`--serve` starts Triton and the OpenAI frontend on the repository afterwards (triton_llm.cli.serve).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triton_llm.tasks import BACKENDS, ENCODER_TASKS, TASKS, SettingError, resolve_backend, resolve_task

logger = logging.getLogger("make_repo")

# KServe's --dtype choices; `float` and `half` are aliases there too.
DTYPES = {"auto": None, "float16": "float16", "half": "float16", "bfloat16": "bfloat16", "float32": "float32",
          "float": "float32"}  # fmt: skip
# Encoder-task options: model.json keys of triton_llm.encoders.engine under KServe's names.
ENCODER_FLAGS = ("disable_lower_case", "disable_special_tokens", "return_token_type_ids", "return_probabilities")
# The vLLM engine arguments our transformers engine also reads.
HF_ENGINE_ARGS = {"max_num_seqs", "served_model_name"}
# Weights in other frameworks' formats, never loaded by vLLM or transformers.
NOT_PYTORCH = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "onnx/*", "openvino/*", "coreml/*", "*.gguf"]
# Pickled PyTorch weights, skipped when the model also has safetensors.
PICKLED = ["*.bin", "*.pt", "*.pth"]

MODEL_PY = """\
# {what}; everything lives in the triton_llm package (docs/protocol.md).
from {runner} import TritonPythonModel  # noqa: F401
"""

GENERATION_CONFIG = """\
# {description}
# Written by `python -m triton_llm.cli.make_repo`. Inputs and outputs are filled in by the model's
# auto_complete_config (docs/protocol.md); engine settings are in 1/model.json.
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}

# One engine per instance; it batches the requests of all clients itself.
instance_group [{{ count: 1, kind: {kind} }}]
"""

ENCODER_CONFIG = """\
# {description}
# Written by `python -m triton_llm.cli.make_repo`. Each text is one row of the batch dimension;
# Triton's dynamic batcher gathers the requests queued while a batch runs into one forward
# pass. Inputs and outputs are filled in by the model's auto_complete_config
# (docs/protocol.md); model settings are in 1/model.json.
backend: "python"
max_batch_size: {max_batch_size}
dynamic_batching {{ }}
instance_group [{{ count: 1, kind: {kind} }}]
"""


class ArgumentError(ValueError):
    """An argument that cannot be honoured for this model; the message starts with its name."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument


@dataclass
class Entry:
    """A repository entry, checked and ready to write."""

    name: str
    task: str
    backend: str
    settings: dict[str, Any]
    runner: str
    config_pbtxt: str
    notes: list[str] = field(default_factory=list)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m triton_llm.cli.make_repo",
        description=__doc__.split("\n\n")[0],
        epilog="Other --options are taken as vLLM engine arguments (e.g. --max-num-seqs 32) and written to model.json.",
    )
    kserve = p.add_argument_group("KServe Hugging Face runtime arguments")
    kserve.add_argument("--model_name", default="model", help="the Triton model name (default: %(default)s)")
    kserve.add_argument("--model_id", help="a hub id, `org/name` or `hf://org/name`: downloaded here")
    kserve.add_argument("--model_dir", help="a local model folder (KServe: where storageUri lands, /mnt/models)")
    kserve.add_argument("--model_revision", help="hub revision of the model: branch, tag or commit")
    kserve.add_argument("--tokenizer_revision", help="hub revision of the tokenizer")
    kserve.add_argument("--dtype", default="auto", choices=list(DTYPES), help="weights' dtype (default: auto)")
    kserve.add_argument("--task", choices=TASKS, help="default: from the model's config")
    kserve.add_argument("--backend", default="auto", choices=BACKENDS, help="default: vLLM if it supports the model")
    kserve.add_argument("--max_length", "--max_model_len", dest="max_model_len", type=int,
                        help="longest input (encoder tasks) or prompt + output (generation), in tokens")  # fmt: skip
    kserve.add_argument("--trust_remote_code", action="store_true", help="run the model's own code from the hub")
    for flag in ENCODER_FLAGS:
        kserve.add_argument(f"--{flag}", action="store_true", help="encoder tasks (KServe's meaning)")
    kserve.add_argument("--tensor_input_names", help="comma-separated model inputs to pass (encoder tasks)")
    ours = p.add_argument_group("where to write, and what then")
    ours.add_argument("--repository", type=Path, default=Path("model_repository"), help="default: %(default)s")
    ours.add_argument("--download_dir", type=Path, help="download --model_id into this folder, not the hub cache")
    ours.add_argument("--instance_kind", default="KIND_MODEL", choices=["KIND_MODEL", "KIND_CPU", "KIND_GPU"],
                      help="instance_group kind (default: %(default)s, the engine places itself)")  # fmt: skip
    ours.add_argument("--max_batch_size", type=int, default=64, help="encoder tasks: texts per batch (default: 64)")
    ours.add_argument("--force", action="store_true", help="replace an existing entry of the same name")
    ours.add_argument("--serve", action="store_true", help="then start Triton and the frontend on the repository")
    ours.add_argument("--host", default="127.0.0.1", help="with --serve: address to listen on")
    for name, port in (("http", 8000), ("grpc", 8001), ("metrics", 8002), ("frontend", 9000)):
        ours.add_argument(f"--{name}-port", type=int, default=port, help=f"with --serve (default: {port})")
    ours.add_argument("--ready-timeout", type=float, default=600.0, help="with --serve: seconds to wait for the models")
    return p


# -- the model's files ------------------------------------------------------------------


def fetch(model_id: str, revision: str | None, download_dir: Path | None) -> tuple[Path, str]:
    """Download a hub model; (local folder, commit it was downloaded at)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    repo_id = model_id.removeprefix("hf://")
    try:
        info = HfApi().model_info(repo_id, revision=revision)  # token: HF_TOKEN or the saved login
    except RevisionNotFoundError:
        raise ArgumentError("--model_revision", f"{repo_id} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise ArgumentError("--model_id", f"{repo_id} is not on the hub, or is private (set HF_TOKEN)") from None
    except HfHubHTTPError as exc:
        raise ArgumentError("--model_id", f"cannot reach the hub for {repo_id}: {exc}") from None
    files = [s.rfilename for s in info.siblings or []]
    ignore = NOT_PYTORCH + (PICKLED if any(f.endswith(".safetensors") for f in files) else [])
    logger.info("downloading %s at %s into %s", repo_id, info.sha, download_dir or "the hub cache")
    path = snapshot_download(repo_id, revision=info.sha, local_dir=download_dir, ignore_patterns=ignore)
    return Path(path), info.sha


def read_config(folder: Path, trust_remote_code: bool, argument: str) -> tuple[Any, bool]:
    """(transformers config, whether it is a sentence-transformers folder)."""
    from transformers import AutoConfig

    if not (folder / "config.json").is_file():
        raise ArgumentError(argument, f"{folder} has no config.json: not a transformers model folder")
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except ValueError as exc:  # unknown model_type, or custom code not trusted
        raise ArgumentError(argument, f"cannot read {folder / 'config.json'}: {exc}") from None
    return config, (folder / "modules.json").is_file()


# -- vLLM's engine arguments ------------------------------------------------------------


def engine_args(extra: list[str]) -> dict[str, Any]:
    """Parse the arguments we do not know with vLLM's own parser: the ones given, by model.json key."""
    if not extra:
        return {}
    if not extra[0].startswith("-"):
        raise ArgumentError(extra[0], "unexpected argument")
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs

        try:
            from vllm.utils.argparse_utils import FlexibleArgumentParser
        except ImportError:  # older vLLM
            from vllm.utils import FlexibleArgumentParser
    except ImportError:
        raise ArgumentError(extra[0], "unknown argument (vLLM engine arguments need vLLM installed)") from None
    parser = FlexibleArgumentParser(exit_on_error=False)
    AsyncEngineArgs.add_cli_args(parser)
    base = ["--model", "unused"]
    try:
        given, unknown = parser.parse_known_args(base + extra)
    except (argparse.ArgumentError, SystemExit) as exc:
        raise ArgumentError(extra[0], f"not a valid vLLM engine argument: {exc}") from None
    if unknown:
        raise ArgumentError(unknown[0], "unknown argument: neither KServe's nor a vLLM engine argument")
    defaults = vars(parser.parse_args(base))
    return {k: v for k, v in vars(given).items() if k != "model" and v != defaults.get(k)}


# -- the entry --------------------------------------------------------------------------


def plan(args: argparse.Namespace, extra: list[str] | None = None) -> Entry:
    """Check the arguments against the model and build the entry; nothing is written."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.model_name):
        raise ArgumentError("--model_name", f"{args.model_name!r}: use letters, digits, '_', '.', '-'")
    if args.max_model_len is not None and args.max_model_len < 1:
        raise ArgumentError("--max_length", f"must be a positive number of tokens, got {args.max_model_len}")
    if args.max_batch_size < 1:
        raise ArgumentError("--max_batch_size", f"must be at least 1, got {args.max_batch_size}")
    if (args.repository / args.model_name).exists() and not args.force:
        raise ArgumentError("--model_name", f"{args.repository / args.model_name} exists; --force replaces it")
    notes = []
    settings: dict[str, Any] = {}
    if args.model_id and Path(args.model_id).is_dir():  # KServe hands a local path to the HF API too
        args.model_dir, args.model_id = args.model_id, None
    if args.model_id:  # as in KServe, an id wins over --model_dir
        folder, commit = fetch(args.model_id, args.model_revision, args.download_dir)
        if args.download_dir:
            settings["model"] = _model_path(folder, args.repository)
        else:
            settings["model"] = args.model_id.removeprefix("hf://")
            settings["revision"] = commit  # pinned: the entry serves what was checked here
        notes.append(f"{args.model_id} at commit {commit}")
        source = "--model_id"
    elif args.model_dir:
        if args.model_revision:
            raise ArgumentError("--model_revision", "only for --model_id: a local folder holds one revision")
        folder = Path(args.model_dir)
        if not folder.is_dir():
            raise ArgumentError("--model_dir", f"{folder} is not a folder")
        settings["model"] = _model_path(folder, args.repository)
        source = "--model_dir"
    else:
        raise ArgumentError("--model_id", "give --model_id (a hub id) or --model_dir (a local folder)")

    config, sentence_transformers = read_config(folder, args.trust_remote_code, source)
    if args.tokenizer_revision:
        settings["tokenizer_revision"] = args.tokenizer_revision
    if args.task:
        settings["task"] = args.task
    if args.backend != "auto":
        settings["backend"] = args.backend
    if DTYPES[args.dtype]:
        settings["dtype"] = DTYPES[args.dtype]
    if args.trust_remote_code:
        settings["trust_remote_code"] = True

    try:
        task = resolve_task(settings, config, sentence_transformers=sentence_transformers)
        backend = resolve_backend(settings, config, task)
    except SettingError as exc:
        raise ArgumentError(f"--{exc.key}", str(exc).removeprefix("model.json: ")) from None

    if task in ENCODER_TASKS:
        if args.max_model_len:
            settings["max_length"] = args.max_model_len
        for flag in ENCODER_FLAGS:
            if getattr(args, flag):
                settings[flag] = True
        if args.tensor_input_names:
            settings["tensor_input_names"] = args.tensor_input_names.split(",")
        if extra:
            raise ArgumentError(extra[0], f"vLLM engine arguments do not apply to the {task} task")
        runner = "triton_llm.encoders.runner"
        config_pbtxt = ENCODER_CONFIG.format(
            description=_describe(args, task, backend), max_batch_size=args.max_batch_size, kind=args.instance_kind
        )
    else:
        for flag in (*ENCODER_FLAGS, "tensor_input_names"):
            if getattr(args, flag):
                raise ArgumentError(f"--{flag}", f"an encoder-task option; this model's task is {task}")
        if args.max_model_len:
            settings["max_model_len"] = args.max_model_len
        vllm_args = engine_args(extra or [])
        vllm_only = sorted(set(vllm_args) - HF_ENGINE_ARGS) if backend != "vllm" else []
        if vllm_only:
            raise ArgumentError(f"--{vllm_only[0].replace('_', '-')}", "a vLLM engine argument; this model is served "
                                "by transformers (--backend)")  # fmt: skip
        settings.update(vllm_args)
        runner = "triton_llm.generation.runner"
        config_pbtxt = GENERATION_CONFIG.format(description=_describe(args, task, backend), kind=args.instance_kind)
    return Entry(args.model_name, task, backend, settings, runner, config_pbtxt, notes)


def write(entry: Entry, repository: Path) -> Path:
    """Write the entry's three files (over an existing entry's)."""
    root = repository / entry.name
    version = root / "1"
    version.mkdir(parents=True, exist_ok=True)
    (root / "config.pbtxt").write_text(entry.config_pbtxt)
    (version / "model.json").write_text(json.dumps(entry.settings, indent=2) + "\n")
    what = "An embedding / encoder-task model" if entry.task in ENCODER_TASKS else "A generation model"
    (version / "model.py").write_text(MODEL_PY.format(what=what, runner=entry.runner))
    return root


def _model_path(folder: Path, repository: Path) -> str:
    """model.json's `model`: relative to `<name>/1/` inside the repository (it moves as one), else absolute."""
    # abspath, not resolve: a linked folder stays named by its link
    folder, repository = Path(os.path.abspath(folder)), Path(os.path.abspath(repository))
    if folder.is_relative_to(repository):
        return str(Path("..", "..", folder.relative_to(repository)))
    return str(folder)


def _engine(backend: str) -> str:
    return "vLLM" if backend == "vllm" else "transformers"


def _describe(args: argparse.Namespace, task: str, backend: str) -> str:
    return f"{args.model_id or args.model_dir}: {task} on {_engine(backend)} (--backend {args.backend})"


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("make_repo: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    args, extra = build_parser().parse_known_args(argv)
    try:
        entry = plan(args, extra)
        root = write(entry, args.repository)
    except ArgumentError as exc:
        print(f"make_repo: error: {exc}", file=sys.stderr)
        return 2
    print(f"make_repo: wrote {root}: {entry.task} on {_engine(entry.backend)}" + "".join(f"; {n}" for n in entry.notes))
    if not args.serve:
        return 0
    from triton_llm.cli import serve

    ports = [f"--{name}-port={getattr(args, f'{name}_port')}" for name in ("http", "grpc", "metrics", "frontend")]
    return serve.main(["--model-repository", str(args.repository), "--host", args.host, *ports,
                       f"--ready-timeout={args.ready_timeout}"])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
