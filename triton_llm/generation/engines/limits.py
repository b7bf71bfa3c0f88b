"""The context check both engines make before generating: `max_tokens` must fit beside the prompt.

OpenAI answers 400 when the prompt and `max_tokens` together exceed the model's context,
rather than generating until the context ends, and so did vLLM's server until it began to
clamp (0.32 refuses only a `max_tokens` beyond the whole context); we answer 400, with
OpenAI's wording. `max_tokens: null` means "up to the context" and is
never refused here. A prompt that fills the context by itself is the prompt's problem, and
each engine's prompt check names the prompt instead.
"""

from __future__ import annotations

from triton_llm.errors import InvalidInput

FIELD = "sampling_parameters.max_tokens"


def check_max_tokens(max_tokens: int | None, prompt_tokens: int | None, max_model_len: int, prompt_name: str) -> None:
    """Refuse a `max_tokens` beyond the context, naming the limit.

    `prompt_tokens` is None for an encoder-decoder model, whose prompt does not share the
    decoder's context; `prompt_name` is what the client calls the prompt (`prompt`, `messages`).
    """
    if max_tokens is None:
        return
    used = prompt_tokens or 0
    if used >= max_model_len or used + max_tokens <= max_model_len:
        return
    if prompt_tokens is None:
        requested = f"However, you requested {max_tokens} tokens in the completion. Please reduce the completion."
    else:
        requested = (
            f"However, you requested {used + max_tokens} tokens ({used} in the {prompt_name}, {max_tokens} in the "
            f"completion). Please reduce the length of the {prompt_name} or completion."
        )
    raise InvalidInput(FIELD, f"This model's maximum context length is {max_model_len} tokens. {requested}")
