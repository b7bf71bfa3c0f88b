"""model.json as typed settings, one class per engine family: a bad value fails at load, naming its key.

model.json sits beside config.pbtxt (vllm_backend's convention) and holds vLLM's
`AsyncEngineArgs` keys, so an entry from Triton's vllm_backend moves over as it is; the
transformers engine and the encoder models read the same names where they mean the same
thing, and KServe's runtime arguments under KServe's names. Each field's docstring is its
documentation: docs/settings.md is rendered from these classes (triton_llm.settings_reference).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from triton_llm.errors import SettingError
from triton_llm.tasks import Task

logger = logging.getLogger(__name__)

MODEL_JSON = "model.json"
# vLLM's `--dtype` choices (`half` and `float` are aliases there).
DType = Literal["auto", "half", "float16", "bfloat16", "float", "float32"]
Backend = Literal["auto", "vllm", "huggingface"]


def setting(default: Any = None, *, vllm: bool = False, kserve: bool = False, **constraints: Any) -> Any:
    """A model.json key; `vllm` / `kserve`: the name is vLLM's engine argument / KServe's runtime argument."""
    return Field(default, json_schema_extra={"vllm": vllm, "kserve": kserve}, **constraints)


class ModelSettings(BaseModel):
    """The keys every model reads: where its weights are and how to load them."""

    # Values come from JSON: no coercion ("yes" is not a boolean, "8" not a number).
    model_config = ConfigDict(extra="allow", strict=True, frozen=True, use_attribute_docstrings=True)
    family: ClassVar[str] = "every model"

    model: str = setting(..., vllm=True)
    """A hub id (`org/name` or `hf://org/name`) or a folder; a relative path is resolved against model.json's folder."""
    tokenizer: str | None = setting(vllm=True)
    """The tokenizer's hub id or folder, when it is not the model's."""
    revision: str | None = setting(vllm=True)
    """Hub revision of the model: a branch, tag or commit (KServe's `--model_revision`)."""
    tokenizer_revision: str | None = setting(vllm=True, kserve=True)
    """Hub revision of the tokenizer; default: `revision`."""
    trust_remote_code: bool = setting(False, vllm=True, kserve=True)
    """Run the model's own code from the hub."""
    dtype: DType = setting("auto", vllm=True, kserve=True)
    """Weights' dtype; `auto` on a CPU: bfloat16 where it has bf16 instructions, else float32; on a GPU: the model's."""
    task: Task | None = setting(kserve=True, strict=False)
    """What the model serves; default: from its config (`architectures`, `is_encoder_decoder`)."""
    backend: Backend = setting("auto", kserve=True)
    """`auto`: vLLM when it implements the architecture and the task is text generation, else transformers."""

    @classmethod
    def check_extras(cls, extras: Mapping[str, Any], where: str) -> None:
        """Keys that are not fields: a family logs those it does not read. The common part says nothing."""


class _Family(ModelSettings):
    @classmethod
    def check_extras(cls, extras: Mapping[str, Any], where: str) -> None:
        if extras:
            logger.warning("%s: keys without effect for the %s: %s", where, cls.family, sorted(extras))


class GenerationSettings(ModelSettings):
    """The keys every generation model reads, whichever its engine."""

    max_concurrent_requests: int | None = setting(gt=0)
    """Requests admitted at once, running plus waiting (as TGI names it); more get 429; default: 2 × `max_num_seqs`."""
    # Chat: vLLM's server arguments (not engine arguments) under their names; read by triton_llm.generation.chat.
    chat_template: str | None = setting()
    """The chat template for `messages`: a Jinja file (relative to model.json's folder) or the template itself;
    default: the tokenizer's."""
    default_chat_template_kwargs: dict[str, Any] | None = setting()
    """Template variables every request gets unless it sets them (`{"enable_thinking": false}`)."""
    tool_call_parser: str | None = setting()
    """vLLM's tool-call parser that finds calls in the output for `tool_choice: auto` (`hermes`, `llama3_json`,
    `mistral`, `pythonic`, ...: docs/tool-calling.md)."""
    enable_auto_tool_choice: bool = setting(False)
    """Accept `tool_choice: auto` (needs `tool_call_parser`); `required` and a named tool work without it."""
    tool_strict_level: Literal["auto", "function", "parameter"] = setting("parameter")
    """vLLM's `--tool-strict-level` for parsers whose format has a structural tag (`hermes`, ...): `parameter`
    makes every call's arguments match its tool's schema; vLLM's default `auto` only for tools with `strict: true`."""
    reasoning_parser: str | None = setting()
    """vLLM's reasoning parser (`qwen3`, `deepseek_r1`, ...) that moves the thinking to `reasoning_content`."""


class LoraModule(BaseModel):
    """One LoRA adapter: vLLM's `LoRAModulePath` (`name=path` on its command line)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    path: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _name_equals_path(cls, value: Any) -> Any:
        return _split_lora(value)


class VllmSettings(GenerationSettings):
    """The keys of every model, and any of vLLM's `AsyncEngineArgs` (`max_num_seqs`, `gpu_memory_utilization`,
    `enforce_eager`, ...), passed to vLLM as they are; a key that is not one of them stops the load.
    On a machine with no GPU, unless given: the CPU's fast `dtype`, `enforce_eager: true` and a 2 GiB
    KV cache (`VLLM_CPU_KVCACHE_SPACE`); see triton_llm.generation.engines.vllm_args.
    """

    family: ClassVar[str] = "vLLM engine"

    lora_modules: list[LoraModule] | None = setting()
    """LoRA adapters a request may name (`lora_name`), as vLLM's `--lora-modules`: `{"name": ..., "path": ...}`
    objects or `name=path` strings, a relative path resolved against model.json's folder; needs `enable_lora: true`.
    vllm_backend's `multi_lora.json` beside model.json (`{"name": "path"}`) adds to them when `enable_lora` is on."""

    @classmethod
    def check_extras(cls, extras: Mapping[str, Any], where: str) -> None:
        if not extras:
            return  # no need to import vLLM
        known = vllm_engine_keys()
        unknown = sorted(set(extras) - known)
        if known and unknown:
            raise SettingError(unknown[0], f"{unknown[0]} is not a vLLM engine argument (AsyncEngineArgs)", where)


class HfGenerationSettings(_Family, GenerationSettings):
    """Text generation and text2text with transformers (continuous batching), under vLLM's names where both read a
    key; other vLLM keys are logged as without effect."""

    family: ClassVar[str] = "transformers generation engine"

    @classmethod
    def check_extras(cls, extras: Mapping[str, Any], where: str) -> None:
        if "lora_modules" in extras:
            raise SettingError("lora_modules", "LoRA adapters need the vLLM engine (backend: vllm)", where)
        super().check_extras(extras, where)

    max_model_len: int | None = setting(vllm=True, gt=0)
    """Longest prompt + output, in tokens (KServe's `--max_length`); default: the model's positions (T5: 512)."""
    max_num_seqs: int = setting(64, vllm=True, gt=0)
    """Sequences decoded together in one batch step."""
    max_num_batched_tokens: int = setting(2048, vllm=True, gt=0)
    """Prompt tokens prefilled between two decode steps, so that running sequences keep decoding while prompts join:
    waiting prompts join in groups whose padded size (rows × longest) fits it, and a longer prompt (decoder-only) in
    pieces of it. Unlike vLLM's, decode tokens do not count: decoding and prefill run as separate passes, and each
    pass costs about a one-row decode step besides its tokens. A small value gives joining requests their first token
    sooner, but costs throughput and, when many arrive together, stalls the running ones more often (hf_scheduler)."""
    attn_implementation: str | None = setting()
    """transformers' attention; default: grouped eager attention on a CPU (hf_attention), the model's own on a GPU.
    Grouped eager computes `eager`'s bits: greedy output is transformers' `generate` with eager attention, bf16 too.
    `sdpa` (transformers' default, which rounds otherwise) gives its output for prompts prefilled in one piece
    (up to `max_num_batched_tokens`), at a cost for batches."""
    pack_float32_linears: bool = setting(False)
    """On a CPU, float32 linear layers packed for oneDNN too (bfloat16 ones always are): ~3x less CPU for the LM
    head of a 16-row step, but oneDNN's sums differ from MKL's in the last bits, so greedy output may part from
    transformers' `generate` (it held on 10 prompts of tools/hf_fidelity)."""
    served_model_name: str | list[str] | None = setting(vllm=True)
    """Accepted so that a vLLM entry moves over unchanged; the name served is the Triton model's."""


class EncoderSettings(_Family):
    """Embeddings, fill-mask, token and sequence classification (triton_llm.encoders), with KServe's options."""

    family: ClassVar[str] = "encoder models"

    max_length: int | None = setting(kserve=True, gt=0)
    """Longest input, in tokens; default: sentence-transformers' `max_seq_length`, else the model's positions."""
    return_probabilities: bool = setting(False, kserve=True)
    """Also return `probabilities`: softmax over the classes (or the vocabulary, per mask)."""
    return_token_type_ids: bool | None = setting(kserve=True)
    """Whether the tokenizer returns token_type_ids; default: the tokenizer's own choice."""
    disable_lower_case: bool = setting(False, kserve=True)
    """Keep the text's case even where the tokenizer lower-cases (`do_lower_case=False`)."""
    disable_special_tokens: bool = setting(False, kserve=True)
    """Tokenize without special tokens ([CLS], [SEP], ...)."""
    tensor_input_names: list[str] | None = setting(kserve=True)
    """The tokenizer outputs passed to the model (a list or a comma-separated string); default: all of them."""
    max_batch_tokens: int = setting(16384, gt=0)
    """Padded tokens per forward pass: texts sorted by length are cut into passes of at most this many."""
    is_matryoshka: bool | None = setting()
    """Any `dimensions` up to the model's may be asked for (vLLM's name); default: the model's config."""
    matryoshka_dimensions: list[int] | None = setting()
    """The `dimensions` a request may ask for (vLLM's name); default: the model's config."""
    num_threads: int | None = setting(gt=0)
    """PyTorch threads for this model's forward passes (`torch.set_num_threads`); default: PyTorch's, one per core.
    Where Triton, the frontend and other models share a few cores, fewer can serve more: idle OpenMP threads spin."""

    @field_validator("tensor_input_names", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value


FAMILIES: tuple[type[ModelSettings], ...] = (VllmSettings, HfGenerationSettings, EncoderSettings)
S = TypeVar("S", bound=ModelSettings)


def parse_settings(cls: type[S], raw: Mapping[str, Any], where: str = MODEL_JSON) -> S:
    """`raw` (model.json's object) as `cls`, or SettingError naming the first bad key."""
    try:
        settings = cls.model_validate(dict(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "model"
        value = raw.get(key)
        if error["type"] == "missing":
            message = f"{key} is required"
        elif error["type"] in ("enum", "literal_error"):
            message = f"{key} must be one of {error['ctx']['expected']}, got {value!r}"
        else:
            message = f"{key}: {error['msg'][0].lower()}{error['msg'][1:]}, got {value!r}"
        raise SettingError(key, message, where) from None
    cls.check_extras(settings.model_extra or {}, where)
    return settings


def keys(
    cls: type[ModelSettings], *, vllm: bool | None = None, kserve: bool | None = None, own: bool = False
) -> list[str]:
    """The keys of `cls` with these marks (None: either), in declaration order; `own`: not ModelSettings' keys."""
    found = []
    for name, info in cls.model_fields.items():
        marks = info.json_schema_extra
        if own and name in ModelSettings.model_fields:
            continue
        if (vllm is None or marks["vllm"] == vllm) and (kserve is None or marks["kserve"] == kserve):
            found.append(name)
    return found


@lru_cache(maxsize=1)
def vllm_engine_keys() -> frozenset[str]:
    """AsyncEngineArgs' fields, model.json's other keys for vLLM; empty without vLLM (the engine then cannot load)."""
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
    except ImportError:
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(AsyncEngineArgs))


def load_model_json(model_dir: str | os.PathLike) -> dict[str, Any]:
    """Read `<model_dir>/model.json`, resolving a relative local `model` or `tokenizer` path."""
    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it holds the engine settings (see docs/protocol.md)")
    try:
        settings = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(settings, dict) or "model" not in settings:
        raise ValueError(f"{path} must be a JSON object with at least a 'model' key")
    for key in ("model", "tokenizer", "chat_template"):
        value = settings.get(key)
        if key == "chat_template" and isinstance(value, str) and ("{{" in value or "{%" in value):
            continue  # the template itself
        if isinstance(value, str) and not value.startswith("hf://"):
            local = Path(model_dir) / value  # an absolute value stays as it is
            if value.startswith((".", "/")) or local.exists():
                settings[key] = str(local.resolve())
    _add_lora_modules(settings, Path(model_dir))
    return settings


MULTI_LORA_JSON = "multi_lora.json"


def _split_lora(value: Any) -> Any:
    """vLLM's `name=path` string as an object; anything else as it is."""
    if isinstance(value, str) and "=" in value:
        name, path = value.split("=", 1)
        return {"name": name, "path": path}
    return value


def _add_lora_modules(settings: dict[str, Any], model_dir: Path) -> None:
    """`lora_modules` with local paths resolved like `model`, plus vllm_backend's multi_lora.json
    ({name: path}) when `enable_lora` is on (vllm_backend reads it only then; it sends "true" as a string)."""
    modules = settings.get("lora_modules")
    if not isinstance(modules, (list, type(None))):
        return  # not a list: VllmSettings says so, naming the key
    modules = list(map(_split_lora, modules or []))
    extra = model_dir / MULTI_LORA_JSON
    if settings.get("enable_lora") in (True, "true") and extra.is_file():
        try:
            named = json.loads(extra.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{extra} is not valid JSON: {exc}") from None
        if not isinstance(named, dict):
            raise ValueError(f"{extra} must be a JSON object of adapter names to paths")
        modules += [{"name": name, "path": path} for name, path in named.items()]
    for module in modules:
        path = module.get("path") if isinstance(module, dict) else None
        if isinstance(path, str) and (path.startswith(".") or (model_dir / path).exists()):
            module["path"] = str((model_dir / path).resolve())
    if modules:
        settings["lora_modules"] = modules
