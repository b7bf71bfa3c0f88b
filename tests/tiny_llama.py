"""A tiny Llama with random weights whose head counts divide by 2 (4 heads, 2 KV heads) and whose
layers split in two: tensor and pipeline parallel at size 2 (tests/integration/test_scale.py).
SmolLM2-135M has 9 heads, so it cannot be split across two ranks.

SmolLM2's tokenizer and chat template; head_dim 32 (vLLM's CPU attention takes no smaller head);
weights from N(0, 0.1), seeded (std 0.02 gives near-tied logits), float32. About 3 s to build.
"""

from __future__ import annotations

from pathlib import Path

from tests.tiny_models import widen_and_save


def build_tiny_llama(dest: Path, tokenizer_dir: Path, layers: int = 4, seed: int = 0) -> Path:
    """A `layers`-layer Llama on the tokenizer of `tokenizer_dir`, saved to `dest` (kept if there)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (dest / "config.json").exists():
        return dest
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=32768,  # room for test_scale's long stream
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        architectures=["LlamaForCausalLM"],
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    return widen_and_save(LlamaForCausalLM(config), tokenizer, dest, std=0.1)
