"""Write a Triton model repository entry from KServe's Hugging Face runtime arguments.

    triton-llm make-repo --model_id hf://Qwen/Qwen2.5-0.5B-Instruct --model_name qwen
    triton-llm make-repo --model_dir ./t5-small --model_name t5 --backend huggingface
    triton-llm make-repo --model_name NAME --model_dir /mnt/models --serve --host 0.0.0.0   # KServe

The arguments keep the names and meanings of KServe's huggingfaceserver (`--model_id`,
`--model_dir`, `--model_revision`, `--tokenizer_revision`, `--dtype`, `--task`, `--backend`,
`--max_length`, `--trust_remote_code` and the encoder options); vLLM's engine arguments
(`--max-num-seqs 32`, `--gpu-memory-utilization 0.8`, ...) pass through to model.json as
they do there, and so do its chat server arguments (`--tool-call-parser`, `--reasoning-parser`,
`--chat-template`, ...: triton_llm.cli.chat_args). The entry is
`<repository>/<model_name>/{config.pbtxt, 1/model.json, 1/model.py}` for the runner the task
needs; `--max-concurrent-requests` bounds its load (more get 429): a generation model's
admitted requests (model.json), an encoder's Triton queue (config.pbtxt).
Task and backend are resolved by the same code that loads the model (triton_llm.tasks), so
an invalid combination fails here, naming its argument, before anything is written.

`--model_id` downloads with huggingface_hub (HF_TOKEN and HF_ENDPOINT honoured, progress
bars, interrupted downloads resume): into the hub cache, and model.json names the id at the
commit downloaded, or with `--download_dir` into that folder, which model.json then names.
`--serve` starts Triton and the OpenAI frontend on the repository afterwards (triton_llm.cli.serve).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from pathlib import Path
from typing import Any, get_args

from openai_frontend.schemas.limits import MAX_EMBEDDING_INPUTS
from triton_llm.cli import chat_args
from triton_llm.cli.model_source import ArgumentError, fetch, model_path, read_config
from triton_llm.cli.repo_entry import ENCODER_CONFIG, GENERATION_CONFIG, Entry, write
from triton_llm.cli.vllm_flags import engine_args
from triton_llm.errors import SettingError
from triton_llm.settings import (
    Backend,
    DType,
    EncoderSettings,
    HfGenerationSettings,
    ModelSettings,
    family_of,
    keys,
    parse_settings,
)
from triton_llm.tasks import ENCODER_TASKS, Task, resolve

logger = logging.getLogger("make_repo")


def _types(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) or (annotation,)


# KServe's --dtype choices are vLLM's; `half` and `float` are aliases, written as what they mean.
DTYPES = {d: {"auto": None, "half": "float16", "float": "float32"}.get(d, d) for d in get_args(DType)}
# Encoder-task options: EncoderSettings' keys under KServe's names (--max_length is shared with generation).
ENCODER_OPTIONS = [k for k in keys(EncoderSettings, kserve=True, own=True) if k != "max_length"]
# Those that are flags; the others take a comma-separated list.
ENCODER_FLAGS = [k for k in ENCODER_OPTIONS if bool in _types(EncoderSettings.model_fields[k].annotation)]
# The vLLM engine arguments our transformers engine also reads.
HF_ENGINE_ARGS = set(keys(HfGenerationSettings, vllm=True))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="triton-llm make-repo",
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
    kserve.add_argument("--task", choices=[t.value for t in Task], help="default: from the model's config")
    kserve.add_argument("--backend", default="auto", choices=get_args(Backend),
                        help="default: vLLM if it supports the model")  # fmt: skip
    kserve.add_argument("--max_length", "--max_model_len", dest="max_model_len", type=int,
                        help="longest input (encoder tasks) or prompt + output (generation), in tokens")  # fmt: skip
    kserve.add_argument("--trust_remote_code", action="store_true", help="run the model's own code from the hub")
    for option in ENCODER_OPTIONS:
        doc = f"encoder tasks: {EncoderSettings.model_fields[option].description}"
        if option in ENCODER_FLAGS:
            kserve.add_argument(f"--{option}", action="store_true", help=doc)
        else:
            kserve.add_argument(f"--{option}", metavar="A,B", help=doc)
    chat_args.add_arguments(p)
    ours = p.add_argument_group("where to write, and what then")
    ours.add_argument("--repository", type=Path, default=Path("model_repository"), help="default: %(default)s")
    ours.add_argument("--download_dir", type=Path, help="download --model_id into this folder, not the hub cache")
    ours.add_argument("--instance_kind", default="KIND_MODEL", choices=["KIND_MODEL", "KIND_CPU", "KIND_GPU"],
                      help="instance_group kind (default: %(default)s, the engine places itself)")  # fmt: skip
    ours.add_argument("--instance-count", "--instance_count", dest="instance_count", type=int, default=1, metavar="N",
                      help="instance_group count: N engines, each with its own KV cache (default: 1)")  # fmt: skip
    ours.add_argument("--max_batch_size", type=int, default=64, help="encoder tasks: texts per batch (default: 64)")
    ours.add_argument("--max-concurrent-requests", "--max_concurrent_requests", dest="max_concurrent_requests",
                      type=int, metavar="N", help="load shedding (TGI's name), more get 429: generation: requests "
                      "admitted, running plus waiting (default: 2 × max_num_seqs); encoder tasks: requests waiting "
                      "in Triton's queue (default: see encoder_queue_size)")  # fmt: skip
    ours.add_argument("--force", action="store_true", help="replace an existing entry of the same name")
    ours.add_argument("--serve", action="store_true", help="then start Triton and the frontend on the repository")
    ours.add_argument("--host", default="127.0.0.1", help="with --serve: address to listen on")
    for name, port in (("http", 8000), ("grpc", 8001), ("metrics", 8002), ("frontend", 9000)):
        ours.add_argument(f"--{name}-port", type=int, default=port, help=f"with --serve (default: {port})")
    ours.add_argument("--ready-timeout", type=float, default=600.0, help="with --serve: seconds to wait for the models")
    return p


# -- the entry --------------------------------------------------------------------------


def plan(args: argparse.Namespace, extra: list[str] | None = None) -> Entry:
    """Check the arguments against the model and build the entry; nothing is written."""
    _check_arguments(args)
    settings, folder, source, notes = _model_source(args)
    config, sentence_transformers = read_config(folder, args.trust_remote_code, source)
    settings.update(_common_settings(args))
    task, backend = _choose(settings, config, sentence_transformers)
    vllm_args: dict[str, Any] = {}
    files: dict[str, str] = {}
    if task in ENCODER_TASKS:
        runner, config_pbtxt = _encoder_part(args, extra, settings, task, backend)
    else:
        runner, config_pbtxt, files, vllm_args = _generation_part(args, extra, settings, task, backend)
    _check_family(family_of(task, backend), settings, vllm_args)
    return Entry(args.model_name, task, backend, settings, runner, config_pbtxt, notes, files)


def _check_arguments(args: argparse.Namespace) -> None:
    """What the arguments alone get wrong, before anything is downloaded."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.model_name):
        raise ArgumentError("--model_name", f"{args.model_name!r}: use letters, digits, '_', '.', '-'")
    if args.max_model_len is not None and args.max_model_len < 1:
        raise ArgumentError("--max_length", f"must be a positive number of tokens, got {args.max_model_len}")
    if args.instance_count < 1:
        raise ArgumentError("--instance-count", f"must be at least 1, got {args.instance_count}")
    if args.max_batch_size < 1:
        raise ArgumentError("--max_batch_size", f"must be at least 1, got {args.max_batch_size}")
    if args.max_concurrent_requests is not None and args.max_concurrent_requests < 1:
        raise ArgumentError("--max-concurrent-requests", f"must be at least 1, got {args.max_concurrent_requests}")
    if (args.repository / args.model_name).exists() and not args.force:
        raise ArgumentError("--model_name", f"{args.repository / args.model_name} exists; --force replaces it")


def _model_source(args: argparse.Namespace) -> tuple[dict[str, Any], Path, str, list[str]]:
    """model.json's `model` (and `revision`), the local folder, the argument that named it, and notes."""
    settings: dict[str, Any] = {}
    if args.model_id and Path(args.model_id).is_dir():  # KServe hands a local path to the HF API too
        args.model_dir, args.model_id = args.model_id, None
    if args.model_id:  # as in KServe, an id wins over --model_dir
        folder, commit = fetch(args.model_id, args.model_revision, args.download_dir)
        if args.download_dir:
            settings["model"] = model_path(folder, args.repository)
        else:
            settings["model"] = args.model_id.removeprefix("hf://")
            settings["revision"] = commit  # pinned: the entry serves what was checked here
        return settings, folder, "--model_id", [f"{args.model_id} at commit {commit}"]
    if not args.model_dir:
        raise ArgumentError("--model_id", "give --model_id (a hub id) or --model_dir (a local folder)")
    if args.model_revision:
        raise ArgumentError("--model_revision", "only for --model_id: a local folder holds one revision")
    folder = Path(args.model_dir)
    if not folder.is_dir():
        raise ArgumentError("--model_dir", f"{folder} is not a folder")
    settings["model"] = model_path(folder, args.repository)
    return settings, folder, "--model_dir", []


def _common_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keys every model reads (`ModelSettings`), from KServe's arguments, where they are not the default."""
    given = {
        "tokenizer_revision": args.tokenizer_revision,
        "task": args.task,
        "backend": args.backend if args.backend != "auto" else None,
        "dtype": DTYPES[args.dtype],
        "trust_remote_code": args.trust_remote_code or None,
    }
    return {key: value for key, value in given.items() if value}


def _choose(settings: dict[str, Any], config: Any, sentence_transformers: bool) -> tuple[Task, str]:
    """The task and backend, by the rule the runners load the model with (triton_llm.tasks)."""
    try:
        return resolve(parse_settings(ModelSettings, settings), config, sentence_transformers=sentence_transformers)
    except SettingError as exc:
        raise ArgumentError(f"--{exc.key}", exc.message) from None


def _encoder_part(
    args: argparse.Namespace, extra: list[str] | None, settings: dict[str, Any], task: Task, backend: str
) -> tuple[str, str]:
    """An encoder task's keys added to `settings`; its runner and config.pbtxt."""
    if args.max_model_len:
        settings["max_length"] = args.max_model_len
    for option in ENCODER_OPTIONS:
        if getattr(args, option):
            settings[option] = True if option in ENCODER_FLAGS else getattr(args, option).split(",")
    if extra:
        raise ArgumentError(extra[0], f"vLLM engine arguments do not apply to the {task} task")
    if flag := chat_args.given(args):
        raise ArgumentError(flag, f"a chat option; this model's task is {task}")
    config_pbtxt = ENCODER_CONFIG.format(
        description=_describe(args, task, backend),
        max_batch_size=args.max_batch_size,
        max_queue_size=args.max_concurrent_requests or encoder_queue_size(args.max_batch_size),
        kind=args.instance_kind,
        count=args.instance_count,
    )
    return "triton_llm.encoders.runner", config_pbtxt


def _generation_part(
    args: argparse.Namespace, extra: list[str] | None, settings: dict[str, Any], task: Task, backend: str
) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    """A generation model's keys added to `settings`; its runner, config.pbtxt, chat template files and vLLM's
    engine arguments."""
    for option in ENCODER_OPTIONS:
        if getattr(args, option):
            raise ArgumentError(f"--{option}", f"an encoder-task option; this model's task is {task}")
    if args.max_model_len:
        settings["max_model_len"] = args.max_model_len
    vllm_args = engine_args(extra or [])
    vllm_only = sorted(set(vllm_args) - HF_ENGINE_ARGS) if backend != "vllm" else []
    if vllm_only:
        raise ArgumentError(f"--{vllm_only[0].replace('_', '-')}", "a vLLM engine argument; this model is served "
                            "by transformers (--backend)")  # fmt: skip
    settings.update(vllm_args)
    if args.max_concurrent_requests:
        settings["max_concurrent_requests"] = args.max_concurrent_requests
    chat, files = chat_args.chat_settings(args)
    settings.update(chat)
    config_pbtxt = GENERATION_CONFIG.format(
        description=_describe(args, task, backend), kind=args.instance_kind, count=args.instance_count
    )
    return "triton_llm.generation.runner", config_pbtxt, files, vllm_args


def _check_family(family: type[ModelSettings], settings: dict[str, Any], vllm_args: dict[str, Any]) -> None:
    """model.json parsed as the runner will parse it, an error naming the argument that set the key."""
    try:
        parse_settings(family, settings)
    except SettingError as exc:
        flag = exc.key.replace("_", "-") if exc.key in vllm_args else exc.key  # vLLM's flags have dashes
        raise ArgumentError(f"--{flag}", exc.message) from None


def encoder_queue_size(max_batch_size: int) -> int:
    """Requests an encoder's queue holds before Triton refuses more: four full /v1/embeddings
    inputs (the frontend sends one in requests of `max_batch_size` texts), or two batches of
    one-text clients, whichever is more. 128 for the default 64."""
    return max(4 * math.ceil(MAX_EMBEDDING_INPUTS / max_batch_size), 2 * max_batch_size)


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
