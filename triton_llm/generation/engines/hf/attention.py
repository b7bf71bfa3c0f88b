"""Eager attention without copying the KV cache for grouped-query models, for CPUs.

transformers' eager attention expands keys and values to one copy per query head
(`repeat_kv`) before the matmul. For SmolLM2 (9 query heads, 3 KV heads) that copies the
whole cache three times per layer and step: 20 ms of a 65 ms, 16-row decoding step on this
CPU. Here the query heads that share a KV head are folded into the query-length axis
instead, so the matmuls read the cache in place (65 -> 54 ms). The result is transformers'
eager attention's bit for bit, in bfloat16 too (tests/unit/generation/test_hf_kernels.py on SmolLM2's
shapes; `python -m tools.hf_fidelity` end to end): the engine's greedy output is `generate`'s
with `attn_implementation="eager"`. transformers' default, SDPA, rounds differently (its
own eager and SDPA outputs part on 5 of 8 prompts in bfloat16); serve with
`attn_implementation: "sdpa"` for its output, for a prompt prefilled in one piece.

SDPA is no alternative on a CPU for padded decoding batches (slower than eager, see
`engine`). A model whose attention takes anything more (soft-capping, sinks, T5's
position bias) gets its own eager function.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

NAME = "grouped_eager"
# What Llama-like models pass besides the tensors; the mask already applies a sliding window.
PLAIN = {"dropout", "scaling", "position_ids", "use_cache", "cache_position", "output_attentions", "sliding_window"}


def grouped_eager_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # [batch, heads, q_len, head_dim]
    key: torch.Tensor,  # [batch, kv_heads, kv_len, head_dim]
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,  # additive, [batch, 1, q_len, kv_len]
    scaling: float | None = None,
    dropout: float = 0.0,
    packed: Any = None,  # a packed step's layout (`packed.Packed`): it holds the keys, values and masks
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    if packed is not None:
        return packed.attend(query, scaling, kwargs, grouped), None
    if any(arg is not None for name, arg in kwargs.items() if name not in PLAIN):
        own = sys.modules[type(module).__module__].eager_attention_forward
        return own(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    return grouped(query, key, value, attention_mask, scaling), None


def grouped(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, scaling):
    """Eager attention's output, [batch, q_len, heads, head_dim], without repeating keys and values."""
    batch, heads, q_len, head_dim = query.shape
    scaling = head_dim**-0.5 if scaling is None else scaling
    kv_heads = key.shape[1]
    group = heads // kv_heads  # query head h reads KV head h // group, as in repeat_kv
    scores = torch.matmul(query.reshape(batch, kv_heads, group * q_len, -1), key.transpose(2, 3)) * scaling
    if mask is not None:
        scores = (scores.view(batch, kv_heads, group, q_len, -1) + mask[:, :, None]).flatten(2, 3)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights, value).view(batch, heads, q_len, -1)
    return out.transpose(1, 2).contiguous()


AttentionInterface.register(NAME, grouped_eager_attention)
AttentionMaskInterface.register(NAME, eager_mask)
