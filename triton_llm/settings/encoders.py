"""The encoder models' keys (embeddings, fill-mask, token and sequence classification), with KServe's options."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import field_validator

from triton_llm.settings.common import Family, setting


class EncoderSettings(Family):
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
