"""Continuous batching for the transformers engine: many sequences share each forward pass.

One scheduling thread per model (`_Batcher`): requests join between steps, finished or
cancelled ones leave at once, every step decodes one token for all active sequences.
Two ways to run a step:
  - `CausalBatcher` (decoder-only) keeps one padded batch and one KV cache
    (`DynamicCache`) for all active sequences, as TGI's CausalLM batches did: a joining
    group is prefilled together and its cache rows are left-padded into the batch, leaving
    rows are dropped from it. Why not transformers' own continuous batching
    (`generate_batch` / `init_continuous_batching`)? On a CPU it packs all sequences into
    one row and runs SDPA with a dense block-diagonal mask, so attention costs grow with the
    square of the batch; measured here on SmolLM2, bf16, 128 in / 64 out: 75 tok/s at 16
    concurrent requests against 20 tok/s alone (3.7x), where this batcher gives the figures
    in docs/benchmarks.md. Its paged kernels are for GPUs with flash attention.
  - `Seq2SeqBatcher` (encoder-decoder, which transformers' continuous batching does not
    support): a joining request is encoded once; each step runs the decoder over all active
    sequences right-padded, without a KV cache, so that sequences join and leave at any
    step without cache surgery (text2text outputs are short).
Updates go back as `on_update(token_ids, finished, error)` on the caller's event loop, with
every token generated so far.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from triton_llm.generation.engines.hf_sampling import HfSampling

logger = logging.getLogger(__name__)

OnUpdate = Callable[[list[int], bool, "str | None"], None]


@dataclass
class Sequence:
    """One choice to generate."""

    request_id: str
    prompt_ids: list[int]
    max_new_tokens: int
    eos_token_ids: list[int]
    sampling: HfSampling
    stream: bool = True  # False: only the final update is wanted


@dataclass
class _Active:
    seq: Sequence
    on_update: OnUpdate
    loop: asyncio.AbstractEventLoop
    generated: list[int] = field(default_factory=list)
    encoded: torch.Tensor | None = None  # encoder-decoder: [source_len, hidden]


class _Batcher:
    """The scheduling thread; subclasses say how to join sequences and run one step.

    The thread also loads the model: all of the engine's torch work runs on this one thread.
    PyTorch's OpenMP runtime (libgomp) keeps a pool of workers per thread that runs parallel
    ops, and once there are more of those workers than cores it stops spin-waiting between
    ops, so each op waits for a futex wake-up. On a 2-core machine, SmolLM2 loaded on another
    (still living) thread generated 18 tok/s for one request and 188 for 16; loaded here,
    32 and 320.
    """

    def __init__(self, load: Callable[[], Any], *, max_num_seqs: int):
        self.model: Any = None
        self.max_num_seqs = max_num_seqs
        self.active: list[_Active] = []  # in batch-row order
        self._incoming: queue.Queue = queue.Queue()
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._count = 0
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(load,), name=type(self).__name__, daemon=True)
        self._thread.start()

    def wait_loaded(self) -> Any:
        """Block until the model is loaded; returns it, or raises what loading raised."""
        self._loaded.wait()
        if self._load_error is not None:
            raise self._load_error
        return self.model

    # -- any thread -----------------------------------------------------------------------

    def submit(self, seq: Sequence, on_update: OnUpdate) -> None:
        """Queue a sequence; call from the event loop that `on_update` must run on."""
        with self._lock:
            self._count += 1
        self._incoming.put(_Active(seq, on_update, asyncio.get_running_loop()))

    def cancel(self, request_id: str) -> None:
        with self._lock:
            self._cancelled.add(request_id)
        self._incoming.put(None)  # wake the thread

    def num_unfinished(self) -> int:
        return self._count

    def stop(self) -> None:
        self._incoming.put(StopIteration)
        self._thread.join(timeout=10)

    # -- for subclasses: run on the batching thread ----------------------------------------

    def setup(self) -> None:
        """Called once the model is loaded."""

    def join(self, joining: list[_Active]) -> list[int] | None:
        """Prepare joining sequences, appended to `active`; may return their first tokens."""
        raise NotImplementedError

    def step(self) -> list[int]:
        """One forward pass over `active`: the next token of each."""
        raise NotImplementedError

    def keep(self, rows: list[int]) -> None:
        """Only these rows of `active` stay (batch state is cut to match)."""
        self.active = [self.active[r] for r in rows]

    # -- the batching thread ----------------------------------------------------------------

    def _main(self, load: Callable[[], Any]) -> None:
        try:
            self.model = load()
            self.setup()
        except BaseException as exc:  # handed to wait_loaded's caller
            self._load_error = exc
            return
        finally:
            self._loaded.set()
        with torch.inference_mode():  # cheaper than no_grad: 31 -> 34 tok/s for one SmolLM2 request
            self._run()

    def _run(self) -> None:
        waiting: list[_Active] = []
        while True:
            joining: list[_Active] = []
            items = []
            try:
                items.append(self._incoming.get(block=not (self.active or waiting)))
                while True:
                    items.append(self._incoming.get_nowait())
            except queue.Empty:
                pass
            if StopIteration in items:
                return
            waiting += [item for item in items if item is not None]
            with self._lock:
                cancelled, self._cancelled = self._cancelled, set()
            try:
                if cancelled:
                    waiting = self._drop_cancelled(waiting, cancelled)
                room = self.max_num_seqs - len(self.active)
                if room > 0 and waiting:
                    joining, waiting = waiting[:room], waiting[room:]
                    start = len(self.active)
                    tokens = self.join(joining)
                    if tokens is not None:
                        self._advance(tokens, first_row=start)
                if self.active:
                    self._advance(self.step())
            except Exception as exc:  # fail what is in flight, keep serving
                logger.exception("%s: step failed", type(self).__name__)
                # Joiners whose join failed are not in `active` yet; each fails once.
                for a in {id(a): a for a in (*self.active, *joining)}.values():
                    self._finish(a, str(exc))
                self.keep([])

    def _drop_cancelled(self, waiting: list[_Active], cancelled: set[str]) -> list[_Active]:
        for a in [*waiting, *self.active]:
            if a.seq.request_id in cancelled:
                self._done()
        rows = [r for r, a in enumerate(self.active) if a.seq.request_id not in cancelled]
        if len(rows) < len(self.active):
            self.keep(rows)
        return [a for a in waiting if a.seq.request_id not in cancelled]

    def _advance(self, tokens: list[int], first_row: int = 0) -> None:
        """Record one new token per row from `first_row`; finished rows leave the batch."""
        rows = list(range(first_row))
        for row, token in enumerate(tokens, start=first_row):
            a = self.active[row]
            a.generated.append(token)
            if token in a.seq.eos_token_ids or len(a.generated) >= a.seq.max_new_tokens:
                self._finish(a, None)
                continue
            if a.seq.stream:
                a.loop.call_soon_threadsafe(a.on_update, list(a.generated), False, None)
            rows.append(row)
        if len(rows) < len(self.active):
            self.keep(rows)

    def _finish(self, a: _Active, error: str | None) -> None:
        self._done()
        a.loop.call_soon_threadsafe(a.on_update, list(a.generated), True, error)

    def _done(self) -> None:
        with self._lock:
            self._count -= 1


class CausalBatcher(_Batcher):
    def setup(self) -> None:
        self._mask = torch.zeros((0, 0), dtype=torch.long)  # [rows, cached positions]
        self._cache: Any = None

    def join(self, joining: list[_Active]) -> list[int]:
        from transformers import DynamicCache

        ids, mask = _pad([a.seq.prompt_ids for a in joining], 0, self.model.device, left=True)
        cache = DynamicCache()  # full-length layers: rows can be cut and padded alike
        logits = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        self._merge(cache, mask)
        self.active += joining
        return _pick(logits, [a.seq for a in joining])

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
        return _pick(logits, [a.seq for a in self.active])

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


class Seq2SeqBatcher(_Batcher):
    def setup(self) -> None:
        config = self.model.config
        self._start_id = (
            config.decoder_start_token_id if config.decoder_start_token_id is not None else config.pad_token_id
        )
        self._pad_id = config.pad_token_id or 0

    def join(self, joining: list[_Active]) -> None:
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
        return _pick(last, [a.seq for a in active])


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


def _pick(logits: torch.Tensor, seqs: list[Sequence]) -> list[int]:
    """The next token of each row: greedy, or sampled with temperature, top-k and top-p as
    transformers' warpers apply them. Rows are handled together where they can be."""
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

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
    for i, token in zip(sampled, _sample(scores.softmax(dim=-1)), strict=True):
        tokens[i] = token
    return tokens


def _sample(probs: torch.Tensor) -> list[int]:
    """One draw per row, by inverting the cumulative distribution.

    The same distribution as `torch.multinomial(probs, 1)`, which on a CPU costs 16 ms for
    16 rows of a 49k vocabulary (its exponential draws) against 0.5 ms here: a quarter of a
    16-row decode step of SmolLM2.
    """
    cdf = probs.cumsum(dim=-1)
    draw = torch.rand((probs.shape[0], 1), device=probs.device) * cdf[:, -1:]
    # right=True: the first token whose cumulative mass exceeds the draw has mass of its own.
    return torch.searchsorted(cdf, draw, right=True).clamp(max=probs.shape[-1] - 1).view(-1).tolist()
