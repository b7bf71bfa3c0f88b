"""Continuous batching for the transformers engine: many sequences share each forward pass.

The scheduling thread (`scheduler.Batcher`) joins and drops sequences between steps;
the two batchers here say how a step runs:
  - `CausalBatcher` (decoder-only) keeps one padded batch and one KV cache
    (`DynamicCache`) for all active sequences, as TGI's CausalLM batches did: a joining
    group is prefilled together and its cache rows are left-padded into the batch, leaving
    rows are dropped from it. A prompt longer than `max_num_batched_tokens` is prefilled in
    pieces into a one-row cache of its own (`extend`), which joins the batch with its last.
    A prompt whose first blocks are in the prefix cache (`prefix_cache`) starts from a copy of
    their KV, as from earlier pieces: a joining group is prefilled from where each row's own
    cache ends, and its prompts' full blocks are stored after.
    A prompt with images (a vision-language model: `multimodal`) is prefilled whole in a pass
    of its own with its image tensors, and its cache row joins the batch alike. A text group's
    prefill, or a piece, runs in the running rows' decode pass (`packed`), in one flat row.
    Why not transformers' own continuous batching
    (`generate_batch` / `init_continuous_batching`)? On a CPU it packs all sequences into
    one row and runs SDPA with a dense block-diagonal mask, so attention costs grow with the
    square of the batch; measured here on SmolLM2, bf16, 128 in / 64 out: 75 tok/s at 16
    concurrent requests against 20 tok/s alone (3.7x), where this batcher gives the figures
    in docs/benchmarks.md. Its paged kernels are for GPUs with flash attention.
  - `Seq2SeqBatcher` (encoder-decoder, which transformers' continuous batching does not
    support): a joining request is encoded once; each step runs the decoder over all active
    sequences right-padded, without a KV cache, so that sequences join and leave at any
    step without cache surgery (text2text outputs are short).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from triton_llm.generation.engines.hf import multimodal, structured, token_filters
from triton_llm.generation.engines.hf import packed as packing
from triton_llm.generation.engines.hf.prefix_cache import PrefixCache
from triton_llm.generation.engines.hf.sampling import sample
from triton_llm.generation.engines.hf.scheduler import Active, Batcher
from triton_llm.generation.stats import PREFIX_HITS, PREFIX_QUERIES

logger = logging.getLogger(__name__)


class CausalBatcher(Batcher):
    chunks_prompts = True

    def __init__(self, load: Any, *, prefix_cache: PrefixCache | None = None, packed_step: bool = True, **limits):
        self.prefix_cache = prefix_cache  # None: off
        self.packed_step = packed_step  # False, or found not to work for this model at load: separate passes
        super().__init__(load, **limits)

    def setup(self) -> None:
        self._mask = torch.zeros((0, 0), dtype=torch.long)  # [rows, cached positions]
        self._cache: Any = None
        if self.packed_step and not packing.works(self.model):
            logger.warning("a packed step does not give this model's own output: decoding and prefill run apart")
            self.packed_step = False

    def packs(self, joining: list[Active]) -> bool:
        return self.packed_step and all(a.seq.image_inputs is None for a in joining)

    def join(self, joining: list[Active], packed: bool = False) -> list[int]:
        """Text prompts are prefilled as one padded group, each from where its own cache (earlier pieces, or a
        prefix cache hit) ends; a prompt with images in a pass of its own (each vision-language family pads its
        image tensors its own way), its rows then joining the batch alike. Packed: text only, the running rows'
        tokens first."""
        text = [a for a in joining if a.seq.image_inputs is None]
        tokens = []
        if text:
            for a in text:
                self.to_prefill(a)  # without a cap, nothing has looked the prompt up yet
            ids, mask, position_ids, cache = self._continue(text)
            if packed:
                tokens, logits = self._step_with(ids, mask, position_ids, cache)
            else:
                logits = self._forward(ids, mask, position_ids, cache)
            prompts = [a.seq.prompt_ids for a in text]
            if self.prefix_cache is not None and not self.prefix_cache.store_rows(prompts, cache, mask):
                logger.warning("this model's cache is not one KV pair per layer: prefix caching is off")
                self.prefix_cache = None
            tokens += self._add(text, logits, cache, mask)
        for a in joining:
            if a.seq.image_inputs is not None:
                tokens += self._add([a], *self._prefill_images(a))
        return tokens

    def _prefill_images(self, a: Active) -> tuple[torch.Tensor, Any, torch.Tensor]:
        device, n = self.model.device, len(a.seq.prompt_ids)
        ids = torch.tensor([a.seq.prompt_ids], dtype=torch.long, device=device)
        mask = torch.ones((1, n), dtype=torch.long, device=device)
        inputs, a.seq.image_inputs = multimodal.to_model(a.seq.image_inputs, self.model), None  # not kept past here
        cache = _new_cache()
        logits = self._forward(ids, mask, torch.arange(n, device=device)[None], cache, **inputs)
        return logits, cache, mask

    def _add(self, rows: list[Active], logits: torch.Tensor, cache: Any, mask: torch.Tensor) -> list[int]:
        """Prefilled rows into the batch: their cache and mask merged, their first tokens picked."""
        self._merge(cache, mask)
        self.active += rows
        return _pick(logits, rows)

    def extend(self, a: Active, end: int, packed: bool = False) -> list[int] | None:
        """Run `a`'s prompt tokens from `a.prefilled` to `end` on its own cache."""
        if a.prefix is None:
            a.prefix = _new_cache()
        device = self.model.device
        ids = torch.tensor([a.seq.prompt_ids[a.prefilled : end]], dtype=torch.long, device=device)
        mask = torch.ones((1, end), dtype=torch.long, device=device)
        positions = torch.arange(a.prefilled, end, device=device)[None]
        tokens = self._step_with(ids, mask, positions, a.prefix)[0] if packed else None  # the running rows'
        if not packed:
            self._forward(ids, mask, positions, a.prefix)
        a.prefilled = end
        return tokens

    def to_prefill(self, a: Active) -> int:
        if a.cached is None and self.prefix_cache is not None and a.seq.image_inputs is None:
            a.cached = 0
            if not a.prefilled and (hit := self.prefix_cache.lookup(a.seq.prompt_ids)) is not None:
                a.cached, a.prefix = hit  # its tokens, and a cache of its own holding their KV
                a.prefilled = a.cached
            # vLLM's meaning: prompt tokens looked up, and those found
            self.stats.add(PREFIX_QUERIES, len(a.seq.prompt_ids))
            self.stats.add(PREFIX_HITS, a.cached)
        return super().to_prefill(a)

    def _continue(self, rows: list[Active]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        """The inputs of a group's prefill: each row's prompt from `prefilled` on, left-padded, and one cache of
        the rows' own caches so far, left-padded too (a row's padding may then lie between the two)."""
        device, start = self.model.device, max(a.prefilled for a in rows)
        ids, mask = _pad([a.seq.prompt_ids[a.prefilled :] for a in rows], 0, device, left=True)
        past = torch.zeros((len(rows), start), dtype=torch.long, device=device)
        for row, a in enumerate(rows):
            past[row, start - a.prefilled :] = 1
        mask = torch.cat([past, mask], dim=1)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)[:, start:]
        own = [a.prefix for a in rows]
        if len(rows) == 1 and own[0] is not None:
            cache = own[0]  # one row: its own cache, as it is
        else:
            cache, some = _new_cache(), next((c for c in own if c is not None), None)
            for i, like in enumerate(some.layers if some is not None else []):
                keys = [_left_pad_to(c.layers[i].keys if c else like.keys[:, :, :0], start) for c in own]
                values = [_left_pad_to(c.layers[i].values if c else like.values[:, :, :0], start) for c in own]
                cache.update(torch.cat(keys), torch.cat(values), i)
        for a in rows:
            a.prefix = None
        return ids, mask, position_ids, cache

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, position_ids: torch.Tensor, cache: Any, **images: Any):
        return self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            **images,
        ).logits[:, -1]

    def _step_with(self, ids, mask, position_ids, cache) -> tuple[list[int], torch.Tensor]:
        """A packed pass (`packed`): the running rows' next tokens, and the group's (on `cache`) last logits."""
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self.active), 1))], dim=1)
        last = [a.generated[-1] for a in self.active]
        running, logits, _ = packing.run(self.model, last, self._cache, self._mask, ids, mask, position_ids, cache)
        return _pick(running, self.active), logits

    def _merge(self, cache: Any, mask: torch.Tensor) -> None:
        """Append new rows (their cache and mask) to the batch, left-padding the shorter side."""
        if self._cache is None or not self.active:
            self._cache, self._mask = cache, mask
            return
        width = max(self._mask.shape[1], mask.shape[1])
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_left_pad_to(old.keys, width), _left_pad_to(new.keys, width)])
            old.values = torch.cat([_left_pad_to(old.values, width), _left_pad_to(new.values, width)])
        self._mask = torch.cat([_left_pad_to(self._mask, width), _left_pad_to(mask, width)])

    def step(self) -> list[int]:
        last = torch.tensor([[a.generated[-1]] for a in self.active], dtype=torch.long, device=self._mask.device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self.active), 1))], dim=1)
        logits = self.model(
            input_ids=last,
            attention_mask=self._mask,
            position_ids=self._mask.sum(-1, keepdim=True) - 1,
            past_key_values=self._cache,
            use_cache=True,
        ).logits[:, -1]
        return _pick(logits, self.active)

    def cache_tokens(self) -> int:
        return self._mask.numel()  # the padded cache: rows x positions, what its memory holds

    def keep(self, rows: list[int]) -> None:
        super().keep(rows)
        if not rows:
            self._cache, self._mask = None, self._mask[:0]
            return
        index = torch.tensor(rows, dtype=torch.long, device=self._mask.device)
        mask = self._mask.index_select(0, index)
        # Columns that are padding in every remaining row are dropped.
        start = int((mask.sum(0) > 0).nonzero()[0])
        self._mask = mask[:, start:]
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, start:]
            layer.values = layer.values.index_select(0, index)[:, :, start:]


class Seq2SeqBatcher(Batcher):
    def setup(self) -> None:
        config = self.model.config
        self._start_id = (
            config.decoder_start_token_id if config.decoder_start_token_id is not None else config.pad_token_id
        )
        self._pad_id = config.pad_token_id or 0

    def join(self, joining: list[Active], packed: bool = False) -> None:
        ids, mask = _pad([a.seq.prompt_ids for a in joining], self._pad_id, self.model.device)
        states = self.model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        for row, a in enumerate(joining):
            a.encoded = states[row, : len(a.seq.prompt_ids)]
        self.active += joining
        return None

    def step(self) -> list[int]:
        active = self.active
        src_len = max(a.encoded.shape[0] for a in active)
        encoded = active[0].encoded.new_zeros((len(active), src_len, active[0].encoded.shape[-1]))
        enc_mask = torch.zeros((len(active), src_len), dtype=torch.long, device=encoded.device)
        for row, a in enumerate(active):
            encoded[row, : a.encoded.shape[0]] = a.encoded
            enc_mask[row, : a.encoded.shape[0]] = 1
        dec_ids, dec_mask = _pad([[self._start_id, *a.generated] for a in active], self._start_id, encoded.device)
        logits = self.model(
            encoder_outputs=(encoded,),
            attention_mask=enc_mask,
            decoder_input_ids=dec_ids,
            decoder_attention_mask=dec_mask,
            use_cache=False,
        ).logits
        last = logits[torch.arange(len(active), device=logits.device), dec_mask.sum(dim=1) - 1]
        return _pick(last, active)


def _new_cache() -> Any:
    from transformers import DynamicCache

    return DynamicCache()  # full-length layers: rows can be cut and padded alike


def _pad(
    rows: list[list[int]], pad_id: int, device: torch.device, left: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, span] = torch.tensor(r, dtype=torch.long)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)


def _left_pad_to(t: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad the sequence axis (-2 for [B, H, T, D] cache tensors, -1 for masks) on the left."""
    axis = -1 if t.dim() == 2 else -2
    missing = width - t.shape[axis]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[axis] = missing
    return torch.cat([t.new_zeros(shape), t], dim=axis)


def _pick(logits: torch.Tensor, rows: list[Active]) -> list[int]:
    """The next token of each row: greedy, or sampled with temperature, top-k and top-p as
    transformers' warpers apply them, among the tokens its grammar (structured outputs) and its
    bans (`allowed_token_ids`, `bad_words`) allow. Rows are handled together where they can be."""
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    seqs = [a.seq for a in rows]
    logits = token_filters.apply(logits, [(a.seq.sampling.token_filter, a.generated) for a in rows])
    logits = structured.mask(logits, [seq.grammar for seq in seqs])
    tokens = logits.argmax(dim=-1).tolist()
    sampled = [i for i, seq in enumerate(seqs) if not seq.sampling.greedy]
    if not sampled:
        return tokens
    temperature = torch.tensor([[seqs[i].sampling.temperature] for i in sampled], device=logits.device)
    scores = logits[sampled].float() / temperature
    for row, i in enumerate(sampled):
        s = seqs[i].sampling
        if s.top_k:
            scores[row : row + 1] = TopKLogitsWarper(s.top_k)(None, scores[row : row + 1])
        if s.top_p < 1.0:
            scores[row : row + 1] = TopPLogitsWarper(s.top_p)(None, scores[row : row + 1])
    for i, token in zip(sampled, sample(scores.softmax(dim=-1)), strict=True):
        tokens[i] = token
    return tokens
