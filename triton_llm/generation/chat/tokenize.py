"""`tokenize_only` requests (vLLM's /tokenize and /detokenize), answered by the model's own
tokenizer before any engine is involved.

A text or `messages` gets the token ids the engine itself would count for the same prompt:
the chat template rendered as for generation (`engines.base.render_prompt`: model.json's
template and default variables, the tools), then tokenized with special tokens added for a
text and not again for a rendered template, unless the request says otherwise (vLLM's
`add_special_tokens` defaults). `input_ids` are checked against the vocabulary as a prompt's
are, then decoded as vLLM's /detokenize decodes them (special tokens kept).
"""

from __future__ import annotations

import asyncio
from typing import Any

from triton_llm import hf_loading
from triton_llm.generation.engines.base import check_token_ids, render_prompt
from triton_llm.generation.types import GenerateRequest, GenerationChunk
from triton_llm.settings import ModelSettings


def vocab_limit(tokenizer: Any, settings: ModelSettings) -> int:
    """The largest token id the engines take: the larger of the tokenizer's and the model's
    vocabulary (vLLM's bound; an id the model embeds but the tokenizer lacks is valid)."""
    config = hf_loading.load_config(settings)
    model_vocab = getattr(config, "vocab_size", None) or getattr(config.get_text_config(), "vocab_size", 0) or 0
    return max(len(tokenizer), model_vocab) - 1


async def answer(tokenizer: Any, request: GenerateRequest, max_model_len: int | None, limit: int) -> GenerationChunk:
    """The one, final chunk of a `tokenize_only` request; a long prompt is tokenized off the loop."""
    return await asyncio.to_thread(_answer, tokenizer, request, max_model_len, limit)


def _answer(tokenizer: Any, request: GenerateRequest, max_model_len: int | None, limit: int) -> GenerationChunk:
    if request.prompt_ids is not None:
        check_token_ids(request.prompt_ids, limit)
        text = tokenizer.decode(request.prompt_ids)
        return GenerationChunk(text, len(request.prompt_ids), [], True, request.prompt_ids, max_model_len=max_model_len)
    prompt = render_prompt(tokenizer, request)
    add_special = request.add_special_tokens
    if add_special is None:  # a rendered template already holds its special tokens
        add_special = request.messages is None
    ids = list(tokenizer(prompt, add_special_tokens=add_special).input_ids)
    strs = tokenizer.convert_ids_to_tokens(ids) if request.return_token_strs else None
    return GenerationChunk(prompt, len(ids), [], True, ids, max_model_len=max_model_len, token_strs=strs)
