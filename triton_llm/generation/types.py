"""The engine-neutral types of generation: what the runner hands an engine, and what engines yield.

The wire format (`protocol`) depends on these; engines import them from here, never from
the wire module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RETURN_FLAGS = (
    "return_finish_reason",
    "return_cumulative_logprob",
    "return_logprobs",
    "return_num_input_tokens",
    "return_num_output_tokens",
    # Ours: the prompt's logprobs (`sampling_parameters.prompt_logprobs`), and the token ids
    # of the prompt and of each choice.
    "return_prompt_logprobs",
    "return_token_ids",
)


@dataclass
class GenerateRequest:
    """One generation request, validated, independent of Triton and of the engine."""

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    prompt_ids: list[int] | None = None  # `input_ids`: the prompt as token ids, used as they are
    chat_template_kwargs: dict[str, Any] | None = None  # extra variables for the chat template
    # Tool calling (with `messages` only): OpenAI's tool objects, and the choice as sent.
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    # The request's images in prompt order, still encoded (generation/images.py; the `image` input).
    images: list[Any] | None = None
    # Set by the chat layer (triton_llm.generation.chat), not by the wire: model.json's template,
    # and which parsed outputs the responses carry.
    chat_template: str | None = None
    returns_tool_calls: bool = False
    returns_reasoning: bool = False
    # vLLM's rule: keep the last N prompt tokens (-1: as many as the context leaves room for).
    truncate_prompt_tokens: int | None = None
    # vLLM's request options (request_options): the scheduler's priority (lower runs first), and
    # beam search's length penalty (None: no beam search, `use_beam_search` false).
    priority: int = 0
    beam_length_penalty: float | None = None
    stream: bool = False
    # vllm_backend semantics: the prompt is prepended to a non-streamed output unless
    # `exclude_input_in_output` is true; streamed, only when it is false (ours: vLLM's echo).
    prepend_input: bool = True
    sampling: dict[str, Any] = field(default_factory=dict)
    returns: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(RETURN_FLAGS, False))
    sparse_outputs: bool = False
    # `tokenize_only` (vLLM's /tokenize and /detokenize): the chat layer answers at once, with
    # the prompt's ids (`input_ids`: their text); no engine work. vLLM's two fields with it:
    # special tokens added (None: vLLM's default, true for a text, false for `messages`), and
    # the tokens' strings.
    tokenize_only: bool = False
    add_special_tokens: bool | None = None
    return_token_strs: bool = False
    # `lora_control` (a vLLM model with runtime adapters): the JSON command, answered with no generation.
    lora_control: str | None = None


@dataclass
class ChoiceDelta:
    """What one choice (of `n`) produced since the previous chunk."""

    index: int
    text: str = ""
    num_tokens: int = 0
    finish_reason: str | None = None
    cumulative_logprob: float | None = None
    # One dict per new token: {token_id: {"logprob", "rank", "decoded_token"}}.
    logprobs: list[dict[int, dict[str, Any]]] | None = None
    token_ids: list[int] | None = None  # the new token ids
    # With a parser (triton_llm.generation.chat): `text` is then the answer's content only.
    reasoning: str | None = None
    # OpenAI tool calls: whole calls when not streamed, this step's deltas when streamed.
    tool_calls: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class EngineTimings:
    """When the engine queued a request, began its prefill, and made its first and last token
    (time.monotonic() seconds): the queue, prefill and decode spans of a traced request."""

    queued: float
    scheduled: float
    first_token: float
    last_token: float


@dataclass
class GenerationChunk:
    """One step of output for a request: engines yield these, the runner sends them."""

    prompt: str
    num_input_tokens: int
    choices: list[ChoiceDelta]
    finished: bool
    prompt_token_ids: list[int] | None = None
    # One dict per prompt token, as `ChoiceDelta.logprobs`; the first token's has logprob None.
    prompt_logprobs: list[dict[int, dict[str, Any]]] | None = None
    # A `tokenize_only` answer's: the engine's context length, and the prompt's token strings when asked.
    max_model_len: int | None = None
    token_strs: list[str] | None = None
    # On the final chunk, when the engine measured them (read only by tracing: triton_llm/tracing.py).
    timings: EngineTimings | None = None
