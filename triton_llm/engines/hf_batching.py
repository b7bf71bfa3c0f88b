"""Continuous batching for the transformers engine: many sequences share each forward pass.

Two batchers behind one small interface (`submit`, `cancel`, `num_unfinished`, `stop`):
  - `CausalBatcher`, for decoder-only models, is transformers' own continuous batching
    (`ContinuousBatchingManager`: paged KV cache, chunked prefill, requests join and
    leave between steps), configured for a CPU and for per-request sampling;
  - `Seq2SeqBatcher`, for encoder-decoder models, which transformers' continuous batching
    does not support (it schedules one token stream per request through a paged decoder
    cache; there is no encoder or cross-attention in it). Ours runs on its own thread: a
    joining request is encoded once, then every step runs the decoder over all active
    sequences together (right-padded, no KV cache, so sequences join and leave at any step
    without cache surgery; decoder outputs are short for the text2text tasks served).
Both call `on_update(token_ids, finished, error)` on the caller's event loop, with every
token generated so far.
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

logger = logging.getLogger(__name__)

OnUpdate = Callable[[list[int], bool, "str | None"], None]


@dataclass
class Sequence:
    """One choice to generate."""

    request_id: str
    prompt_ids: list[int]
    max_new_tokens: int
    eos_token_ids: list[int]
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0
    stream: bool = True  # False: only the final update is wanted


class CausalBatcher:
    def __init__(self, model: Any, *, max_num_seqs: int, max_batch_tokens: int, cache_tokens: int, page_size: int = 64):
        from transformers import ContinuousBatchingConfig, GenerationConfig

        self._vocab = model.config.get_text_config().vocab_size
        # Sampling is per request: these values only make transformers create the
        # temperature, top-k and top-p processors; every request passes its own. Greedy
        # requests sample with top_k=1, which is argmax.
        generation = GenerationConfig(do_sample=True, temperature=0.5, top_k=50, top_p=0.9, eos_token_id=-1)
        cb = ContinuousBatchingConfig(
            num_blocks=max(1, cache_tokens // page_size),
            page_size=page_size,
            max_batch_tokens=max_batch_tokens,
            max_requests_per_batch=max_num_seqs,
            per_request_processors=True,
            # Both shine on GPUs only; on a CPU they cost (measured: 29 vs 170 tok/s at c=16).
            use_async_batching=False,
            auto_switch_to_flash=False,
            # Prefix sharing re-sorts and re-uses blocks; our requests are independent.
            allow_block_sharing=False,
        )
        self._manager = model.init_continuous_batching(generation_config=generation, continuous_batching_config=cb)
        self._manager.start()
        self._live: set[str] = set()

    def submit(self, seq: Sequence, on_update: OnUpdate) -> None:
        def deliver(output: Any) -> None:
            finished = output.is_finished()
            if finished:
                self._live.discard(seq.request_id)
            on_update(output.generated_tokens, finished, output.error)

        self._live.add(seq.request_id)
        self._manager.register_result_handler(seq.request_id, deliver)  # delivers on the running loop
        self._manager.add_request(
            seq.prompt_ids,
            request_id=seq.request_id,
            max_new_tokens=seq.max_new_tokens,
            streaming=seq.stream,
            eos_token_id=seq.eos_token_ids,
            temperature=1.0 if seq.temperature == 0.0 else float(seq.temperature),
            top_k=1 if seq.temperature == 0.0 else (seq.top_k or self._vocab),
            top_p=float(seq.top_p),
        )

    def cancel(self, request_id: str) -> None:
        if request_id in self._live:
            self._live.discard(request_id)
            self._manager.cancel_request(request_id)
            # A cancelled request gets no final output, so its handler would stay registered.
            router = self._manager.output_router
            with router._lock:
                router.result_handlers.pop(request_id, None)

    def num_unfinished(self) -> int:
        return len(self._live)

    def stop(self) -> None:
        self._manager.stop(block=True, timeout=10)


@dataclass
class _Active:
    seq: Sequence
    on_update: OnUpdate
    loop: asyncio.AbstractEventLoop
    encoded: torch.Tensor  # [source_len, hidden]
    generated: list[int] = field(default_factory=list)


class Seq2SeqBatcher:
    def __init__(self, model: Any, *, max_num_seqs: int):
        self._model = model
        self._max = max_num_seqs
        self._start_id = model.config.decoder_start_token_id
        if self._start_id is None:
            self._start_id = model.config.pad_token_id
        self._incoming: queue.Queue = queue.Queue()
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._count = 0
        self._thread = threading.Thread(target=self._run, name="seq2seq-batcher", daemon=True)
        self._thread.start()

    def submit(self, seq: Sequence, on_update: OnUpdate) -> None:
        with self._lock:
            self._count += 1
        self._incoming.put((seq, on_update, asyncio.get_running_loop()))

    def cancel(self, request_id: str) -> None:
        with self._lock:
            self._cancelled.add(request_id)
        self._incoming.put(())  # wake the loop

    def num_unfinished(self) -> int:
        return self._count

    def stop(self) -> None:
        self._incoming.put(None)
        self._thread.join(timeout=10)

    # -- the batching thread ------------------------------------------------------------

    def _run(self) -> None:
        active: list[_Active] = []
        waiting: list[tuple[Sequence, OnUpdate, asyncio.AbstractEventLoop]] = []
        while True:
            items = []
            try:
                items.append(self._incoming.get(block=not (active or waiting)))
                while True:
                    items.append(self._incoming.get_nowait())
            except queue.Empty:
                pass
            if None in items:
                return
            waiting.extend(item for item in items if item)
            with self._lock:
                cancelled, self._cancelled = self._cancelled, set()
            if cancelled:
                for a in active:
                    if a.seq.request_id in cancelled:
                        self._done(a.seq.request_id)
                active = [a for a in active if a.seq.request_id not in cancelled]
                for seq, *_ in waiting:
                    if seq.request_id in cancelled:
                        self._done(seq.request_id)
                waiting = [w for w in waiting if w[0].request_id not in cancelled]
            try:
                room = self._max - len(active)
                if room > 0 and waiting:
                    joining, waiting = waiting[:room], waiting[room:]
                    active.extend(self._encode(joining))
                if active:
                    active = self._step(active)
            except Exception as exc:  # fail the batch, keep serving
                logger.exception("seq2seq step failed")
                for a in active:
                    self._finish(a, str(exc))
                active = []

    @torch.no_grad()
    def _encode(self, joining: list[tuple[Sequence, OnUpdate, asyncio.AbstractEventLoop]]) -> list[_Active]:
        ids, mask = _pad([seq.prompt_ids for seq, *_ in joining], self._model.config.pad_token_id or 0)
        states = self._model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        out = []
        for row, (seq, on_update, loop) in enumerate(joining):
            out.append(_Active(seq, on_update, loop, states[row, : len(seq.prompt_ids)]))
        return out

    @torch.no_grad()
    def _step(self, active: list[_Active]) -> list[_Active]:
        src_len = max(a.encoded.shape[0] for a in active)
        encoded = active[0].encoded.new_zeros((len(active), src_len, active[0].encoded.shape[-1]))
        enc_mask = torch.zeros((len(active), src_len), dtype=torch.long)
        for row, a in enumerate(active):
            encoded[row, : a.encoded.shape[0]] = a.encoded
            enc_mask[row, : a.encoded.shape[0]] = 1
        dec_ids, dec_mask = _pad([[self._start_id, *a.generated] for a in active], self._start_id)
        logits = self._model(
            encoder_outputs=(encoded,),
            attention_mask=enc_mask,
            decoder_input_ids=dec_ids,
            decoder_attention_mask=dec_mask,
            use_cache=False,
        ).logits
        last = dec_mask.sum(dim=1) - 1
        scores = logits[torch.arange(len(active)), last].float()
        still = []
        for row, a in enumerate(active):
            token = _pick(scores[row], a.seq)
            a.generated.append(token)
            finished = token in a.seq.eos_token_ids or len(a.generated) >= a.seq.max_new_tokens
            if finished:
                self._finish(a, None)
            else:
                if a.seq.stream:
                    a.loop.call_soon_threadsafe(a.on_update, list(a.generated), False, None)
                still.append(a)
        return still

    def _finish(self, a: _Active, error: str | None) -> None:
        self._done(a.seq.request_id)
        a.loop.call_soon_threadsafe(a.on_update, list(a.generated), True, error)

    def _done(self, request_id: str) -> None:
        with self._lock:
            self._count -= 1


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def _pick(scores: torch.Tensor, seq: Sequence) -> int:
    """Greedy, or sampled with temperature, top-k and top-p as transformers' warpers apply them."""
    if seq.temperature == 0.0 or seq.top_k == 1:
        return int(scores.argmax())
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    scores = (scores / seq.temperature).unsqueeze(0)
    if seq.top_k:
        scores = TopKLogitsWarper(seq.top_k)(None, scores)
    if seq.top_p < 1.0:
        scores = TopPLogitsWarper(seq.top_p)(None, scores)
    return int(torch.multinomial(scores.softmax(dim=-1), 1))
