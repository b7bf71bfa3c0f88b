"""Pieces shared by the completion and chat schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas import integers, raw
from openai_frontend.schemas.client_fields import ClientFields
from openai_frontend.schemas.limits import MAX_LOGIT_BIAS, MAX_LOGPROBS, MAX_N, MAX_STOP
from openai_frontend.schemas.structured import StructuredOutputs


class StrictModel(BaseModel):
    # A misspelt field is an error that names it, not something silently ignored; /openapi.json
    # states the integer rule's range (schemas.integers).
    model_config = ConfigDict(extra="forbid", json_schema_extra=integers.bound_schema)


class RequestModel(StrictModel):
    """A whole request body: its raw JSON is checked once, before any field is read, and its
    integers once they are read (schemas.integers: a body model added later gets both)."""

    @model_validator(mode="before")
    @classmethod
    def _raw_json(cls, data: Any) -> Any:
        raw.check(data)
        return data

    @model_validator(mode="after")
    def _integers_fit(self):
        integers.check(self)
        return self


# A response field of vLLM's that OpenAI's responses lack: left out unless it was asked for.
OMITTED_IF_NONE: Any = Field(None, exclude_if=lambda value: value is None)
# vLLM's prompt logprobs: per prompt token, null for the first, else {token_id: Logprob}
# ({"logprob", "rank", "decoded_token"}).
PromptLogprobs = list[dict[str, dict[str, Any]] | None]


class StreamOptions(StrictModel):
    include_usage: bool = False
    # vLLM's: with include_usage, every chunk also carries its choice's usage so far.
    continuous_usage_stats: bool = False


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


# OpenAI's documented range; vLLM's server clamps instead, which changes a request silently.
Bias = Annotated[float, Field(ge=-100, le=100)]
LogitBias = Annotated[dict[str, Bias], Field(max_length=MAX_LOGIT_BIAS)]


class SamplingFields(RequestModel, ClientFields):
    """OpenAI's sampling fields, then vLLM's extras (accepted by vLLM's own server too); more
    of both in `client_fields.ClientFields`."""

    n: int = Field(1, ge=1, le=MAX_N)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP)] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logit_bias: LogitBias | None = None
    user: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    # vLLM extras
    top_k: int | None = None
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, gt=0.0)
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0)
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    prompt_logprobs: int | None = Field(
        None, ge=-1, le=MAX_LOGPROBS, description="Logprobs of the prompt's tokens, with this many candidates each."
    )
    structured_outputs: StructuredOutputs | None = None
    return_token_ids: bool | None = Field(None, description="Add the token ids of the prompt and of each choice.")
    truncate_prompt_tokens: int | None = Field(
        None, ge=-1, description="Keep the last N prompt tokens (-1: as many as the context holds)."
    )

    @model_validator(mode="after")
    def _stream_options_need_stream(self):
        # vLLM's rule: options given (not just `{}`) for a request that does not stream.
        if self.stream_options is not None and self.stream_options.model_fields_set and not self.stream:
            raise FieldValueError("stream_options", "can only be given when `stream` is true")
        return self

    @model_validator(mode="after")
    def _prompt_logprobs_not_streamed(self):
        # vLLM's rule (it lets 0 through, then sends nothing: we say so instead).
        if self.prompt_logprobs is not None and self.stream:
            raise FieldValueError("prompt_logprobs", "are not available when `stream` is true")
        return self

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        # JSON object keys are strings: each must spell a token id, as in OpenAI and vLLM. They
        # stay strings on the wire (sampling_parameters is JSON); the model turns them into ints.
        if value is None:
            return None
        out: dict[str, float] = {}
        for key, bias in value.items():
            try:
                token = int(key)
            except ValueError:
                token = None
            if token is None or not integers.fits(token):  # a key is an integer too (schemas.integers)
                raise ValueError(f"keys must be token ids (integers of 64 bits), got {key!r}")
            out[str(token)] = bias
        return out

    def sampling_parameters(self, max_tokens: int | None) -> dict[str, Any]:
        """The model's `sampling_parameters` (vLLM SamplingParams fields)."""
        params: dict[str, Any] = {"n": self.n, "max_tokens": max_tokens}
        for name in (
            "temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "top_k", "min_p",
            "repetition_penalty",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        if self.stop:
            params["stop"] = [self.stop] if isinstance(self.stop, str) else self.stop
        if self.logit_bias:
            params["logit_bias"] = dict(self.logit_bias)
        if self.ignore_eos:
            params["ignore_eos"] = True
        if self.min_tokens:
            params["min_tokens"] = self.min_tokens
        if not self.skip_special_tokens:
            params["skip_special_tokens"] = False
        if self.include_stop_str_in_output:
            params["include_stop_str_in_output"] = True
        if self.prompt_logprobs is not None:
            params["prompt_logprobs"] = self.prompt_logprobs
        if self.structured_outputs is not None:
            params["structured_outputs"] = self.structured_outputs.to_engine()
        if self.truncate_prompt_tokens is not None:
            params["truncate_prompt_tokens"] = self.truncate_prompt_tokens
        params.update(self.client_sampling())
        return params

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def continuous_usage(self) -> bool:
        """vLLM's rule: usage in every chunk needs `include_usage` too."""
        return self.include_usage and bool(self.stream_options and self.stream_options.continuous_usage_stats)


FinishReason = Literal["stop", "length", "content_filter", "tool_calls"] | None


def finish_reason(raw: str | None) -> FinishReason:
    """vLLM's reasons onto OpenAI's ("abort" never reaches a client that is still there;
    "tool_calls" is the model's, for an answer that called tools)."""
    if raw in (None, "None", ""):
        return None
    return raw if raw in ("length", "tool_calls") else "stop"
