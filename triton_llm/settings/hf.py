"""The transformers generation engine's keys, under vLLM's names where both engines read one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from triton_llm.errors import SettingError
from triton_llm.settings.common import Family, setting
from triton_llm.settings.generation import GenerationSettings


class HfGenerationSettings(Family, GenerationSettings):
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
    waiting prompts join in groups whose padded size (rows × most tokens left to prefill) fits it, and a longer prompt
    (decoder-only) in pieces of it. Unlike vLLM's, decode tokens do not count. A small value gives joining requests
    their first token sooner, but costs throughput and, when many arrive together, slows the running ones more often
    (engines/hf/scheduler.py)."""
    prefill_stall_budget: int = setting(512, ge=0)
    """While sequences decode and one prompt waits to join, a pass prefills at most this many of its tokens divided
    by how many sequences are decoding (at least 16): each prompt token delays every running sequence, so a prompt
    joining a full batch comes in small pieces beside it, one joining a few sequences in large ones
    (engines/hf/budget.py). A queue of prompts joins at `max_num_batched_tokens`. Lower: a steadier stream for the
    running sequences, a later first token for the joining one. 0: only `max_num_batched_tokens` bounds a pass."""
    packed_step: bool = setting(True)
    """Run the running sequences' next tokens and a joining prompt's prefill (or piece) in one forward pass, as vLLM
    does, rather than as separate passes: a prefill then no longer stalls every running sequence for a pass of its own.
    Decoder-only models whose attention is the engine's own (engines/hf/packed.py; it checks at load, and runs separate
    passes otherwise), prompts without images."""
    enable_prefix_caching: bool = setting(True, vllm=True)
    """Reuse the KV of prompt blocks (16 tokens) that earlier requests prefilled, as vLLM's automatic prefix caching:
    a shared system prompt is prefilled once. On by default, as in vLLM: a hit costs a copy of the cached KV, far
    less than its prefill, and float32 output is the same token for token (bfloat16 may round otherwise, as in
    vLLM, since a hit is prefilled in two pieces). Off for vision-language models (engines/hf/prefix_cache.py)."""
    prefix_cache_bytes: int = setting(1 << 30, ge=0)
    """The most memory the prefix cache's blocks hold; the least recently used go first. 1 GiB holds about 46k
    tokens of SmolLM2-135M in bfloat16 (23 KiB each), 5k of a 1.7B model (192 KiB each)."""
    attn_implementation: str | None = setting()
    """transformers' attention; default: grouped eager attention on a CPU (engines/hf/attention.py), the model's own
    on a GPU.
    Grouped eager computes `eager`'s bits: greedy output is transformers' `generate` with eager attention, bf16 too.
    `sdpa` (transformers' default, which rounds otherwise) gives its output for prompts prefilled in one piece
    (up to `max_num_batched_tokens`), at a cost for batches."""
    pack_float32_linears: bool = setting(False)
    """On a CPU, float32 linear layers packed for oneDNN too (bfloat16 ones always are): ~3x less CPU for the LM
    head of a 16-row step, but oneDNN's sums differ from MKL's in the last bits, so greedy output may part from
    transformers' `generate` (it held on 10 prompts of tools/hf_fidelity)."""
