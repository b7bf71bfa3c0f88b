"""The keys every generation model reads, whichever its engine: load shedding and the chat layer."""

from __future__ import annotations

from typing import Any, Literal

from triton_llm.settings.common import ModelSettings, setting


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
    # Images (vision-language models; docs/protocol.md#images). vLLM's engine arguments under their names.
    limit_mm_per_prompt: dict[str, int | dict[str, Any]] | None = setting(vllm=True)
    """Items of each modality one prompt may carry (`{"image": 4}`; vLLM's `--limit-mm-per-prompt`, which also
    takes `{"image": {"count": 4, "width": 512, "height": 512}}`); a prompt with more is a 400 naming the first
    image over it. Default: vLLM's (999 per modality for most models); on the transformers engine, no limit."""
    mm_processor_kwargs: dict[str, Any] | None = setting(vllm=True)
    """Keyword arguments of the model's Hugging Face processor (vLLM's `--mm-processor-kwargs`), e.g. Idefics3's
    `{"size": {"longest_edge": 728}}` or Qwen2-VL's `{"max_pixels": 1003520}`; both engines pass them to each
    call of the processor."""
    max_image_pixels: int = setting(40_000_000, gt=0)
    """The largest image a request may carry, in pixels (width × height, read from the image's header before
    its pixels are decoded, so a decompression bomb costs nothing); more is a 400 naming the image. 40 M holds a
    4K (8.3 M) or 48-megapixel-camera photo; PIL's own bomb check (89 M) would come later."""
