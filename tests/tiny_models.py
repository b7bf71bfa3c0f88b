"""Small models with random weights, built from a config at test time (no real T5 is
available offline). Fixed seeds: the same weights on every run."""

from __future__ import annotations

import re
from pathlib import Path

SPECIALS = ["<pad>", "</s>", "<unk>"]


def plain_words(source_tokenizer, size: int = 500) -> list[str]:
    """`size` lowercase ASCII words from another tokenizer's vocabulary, in its order."""
    words: list[str] = []
    for token in sorted(source_tokenizer.get_vocab(), key=source_tokenizer.get_vocab().get):
        word = token.removeprefix("Ġ")
        if re.fullmatch(r"[a-z]{2,10}", word) and word not in words:
            words.append(word)
        if len(words) == size:
            break
    return words


def word_tokenizer(source_tokenizer, size: int = 500):
    """A word-level tokenizer: `size` plain words taken from another vocabulary.

    Every token decodes to whole ASCII text, so streamed text can be compared with a
    one-shot decode exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + plain_words(source_tokenizer, size))}
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
    # T5's own init makes a tiny model repeat one token; wider weights give varied text.
    return widen_and_save(T5ForConditionalGeneration(config), tokenizer, dest)


def widen_and_save(model, tokenizer, dest: Path, std: float = 0.5) -> Path:
    """Weights drawn from N(0, std), wider than the models' own init (so that outputs differ
    between inputs), saved with the tokenizer to `dest`."""
    import torch

    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, std)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


BERT_HEADS = {
    "fill_mask": "BertForMaskedLM",
    "token_classification": "BertForTokenClassification",
    "sequence_classification": "BertForSequenceClassification",
    "cross_encoder": "BertForSequenceClassification",  # with one label (num_labels 1)
}


def build_tiny_bert(dest: Path, source_tokenizer, task: str, hidden_size: int = 32, heads: int = 4) -> Path:
    """A 2-layer BERT with random weights for one encoder task, with a WordPiece tokenizer
    over plain words (uncased, as bert-base-uncased) and named labels for the classifiers
    (one for a cross-encoder, as ms-marco-MiniLM's). vLLM's CPU attention wants a head size
    of 32 or more (hidden_size 64, heads 2); the default's 8 is smaller and quicker."""
    import torch
    import transformers
    from transformers import BertConfig, BertTokenizerFast

    if (dest / "config.json").exists():
        return dest
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + plain_words(source_tokenizer))}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    labels = {"token_classification": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "cross_encoder": ["LABEL_0"]}.get(
        task, ["neg", "neu", "pos"]
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=heads,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=64,
        architectures=[BERT_HEADS[task]],
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    return widen_and_save(getattr(transformers, BERT_HEADS[task])(config), tokenizer, dest)
