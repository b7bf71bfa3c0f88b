"""Small models with random weights, built from a config at test time (no real T5 is
available offline). Fixed seeds: the same weights on every run."""

from __future__ import annotations

import re
from pathlib import Path

SPECIALS = ["<pad>", "</s>", "<unk>"]


def word_tokenizer(source_tokenizer, size: int = 500):
    """A word-level tokenizer: `size` plain words taken from another vocabulary.

    Every token decodes to whole ASCII text, so streamed text can be compared with a
    one-shot decode exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words: list[str] = []
    for token in sorted(source_tokenizer.get_vocab(), key=source_tokenizer.get_vocab().get):
        word = token.removeprefix("Ġ")
        if re.fullmatch(r"[a-z]{2,10}", word) and word not in words:
            words.append(word)
        if len(words) == size:
            break
    vocab = {t: i for i, t in enumerate(SPECIALS + words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def build_tiny_t5(dest: Path, source_tokenizer) -> Path:
    """A 2-layer T5 with random weights and a word-level vocabulary, saved to `dest`."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    if (dest / "config.json").exists():
        return dest
    tokenizer = word_tokenizer(source_tokenizer)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    # T5's own init makes a tiny model repeat one token; wider weights give varied text.
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.5)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
