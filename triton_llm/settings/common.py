"""The keys every model reads, and how model.json's object becomes a settings class: a bad value fails
at load, naming its key.

`setting()` declares a key with whose name it is (vLLM's engine argument, KServe's runtime
argument, or ours); docs/settings.md shows that mark (triton_llm.settings_reference).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    served_model_name: str | list[str] | None = setting(vllm=True)
    """The names the OpenAI frontend serves the model under, one or a list (vLLM's `--served-model-name`): `/v1/models`
    lists each (not the Triton model's name, unless it is one of them), a request naming any of them or the Triton
    name reaches the model, and the answer's `model` is the name the request used. A name that another model, an
    earlier model's alias or an adapter already has is not served (the frontend logs an error naming both)."""

    @field_validator("served_model_name")
    @classmethod
    def _names(cls, value: str | list[str] | None) -> str | list[str] | None:
        names = [value] if isinstance(value, str) else value or []
        if value is not None and not names:
            raise ValueError("give at least one name")
        for name in names:
            if not name or name != name.strip() or not name.isprintable() or len(name) > 256:
                raise ValueError(f"{name!r} is not a model name: 1 to 256 printable characters, no space at an end")
        return value

    @classmethod
    def check_extras(cls, extras: Mapping[str, Any], where: str) -> None:
        """Keys that are not fields: a family logs those it does not read. The common part says nothing."""


class Family(ModelSettings):
    """A family's settings: keys it does not read are logged as without effect."""

    @classmethod
    def check_extras(cls, extras: Mapping[str, Any], where: str) -> None:
        if extras:
            logger.warning("%s: keys without effect for the %s: %s", where, cls.family, sorted(extras))


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
