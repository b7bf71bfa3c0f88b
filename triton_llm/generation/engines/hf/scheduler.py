"""The scheduling thread of the transformers engine's continuous batching (`batching`).

One thread per model (`Batcher`): requests join between steps, finished or cancelled ones leave at once, every step
decodes one token for all active sequences. This module owns the queues, joining, leaving, cancellation and failures;
a subclass in `batching` says how to join sequences into its batch and run one forward pass. Updates go back as
`on_update(token_ids, finished, error)` on the caller's event loop, with every token generated so far.

Chunked prefill (vLLM's `max_num_batched_tokens`): between two decode steps at most that many prompt tokens are
prefilled, so that running rows keep decoding while long prompts join, and while rows decode and one prompt joins
alone at most `prefill_stall_budget` over their number (`budget`). Waiting prompts join in groups whose padded size
(rows x most left to prefill) fits the cap; a longer one is prefilled alone in pieces of the cap into a cache of its own
(decoder-only, no images) and joins the batch with its last piece. A prompt whose first blocks are in the prefix cache
(`prefix_cache`) starts from their copy, as from earlier pieces. While rows are decoding, a decoder-only batcher runs
their next tokens and the group's prefill (or piece) in one forward pass (`packed`): a prefill no longer stalls every
running row for a pass of its own (on a CPU a pass costs about a one-row decode step besides its tokens). Without it
(`packed_step: false`, images, models whose attention is not ours) decoding and prefill are separate passes.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from triton_llm.generation.engines.hf import budget
from triton_llm.generation.engines.hf.sampling import HfSampling
from triton_llm.generation.engines.hf.structured import RowGrammar
from triton_llm.generation.stats import ITL, QUEUE, TTFT, EngineStats

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
    grammar: RowGrammar | None = None  # structured outputs: masks this row's logits, ends it when complete
    image_inputs: dict[str, Any] | None = None  # the processor's image tensors (multimodal.py): a prefill of its own


@dataclass
class Active:
    """A sequence being served: where its updates go, and what it has generated."""

    seq: Sequence
    on_update: OnUpdate
    loop: asyncio.AbstractEventLoop
    generated: list[int] = field(default_factory=list)
    encoded: torch.Tensor | None = None  # encoder-decoder: [source_len, hidden]
    prefilled: int = 0  # chunked prefill: prompt tokens in `prefix` so far
    prefix: Any = None  # chunked prefill: the cache of the prompt's first `prefilled` tokens
    cached: int | None = None  # prompt tokens the prefix cache gave (`prefix_cache`); None: not looked up
    arrived: float = field(default_factory=time.monotonic)  # for the metrics: queue time, TTFT
    joined: float = 0.0  # when its prefill began; with `first_token`, a traced request's spans (engine.py)
    first_token: float = 0.0
    last_token: float = 0.0  # when its last token came, for the inter-token latency


class Batcher:
    """The scheduling thread; subclasses say how to join sequences and run one step.

    The thread also loads the model: all of the engine's torch work runs on this one thread. PyTorch's OpenMP
    runtime (libgomp) keeps a pool of workers per thread, and once there are more of those than cores it stops
    spin-waiting between ops: each op waits for a futex wake-up. On 2 cores, SmolLM2 loaded on another (still
    living) thread generated 18 tok/s for one request and 188 for 16; loaded here, 32 and 320.
    """

    chunks_prompts = False  # whether `extend` can prefill a prompt in pieces

    def __init__(self, load: Callable[[], Any], *, max_num_seqs: int, max_num_batched_tokens: int | None = None,
                 prefill_stall_budget: int = 0, stats: EngineStats | None = None):  # fmt: skip
        self.model: Any = None
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens  # None: joining prompts are prefilled whole, all at once
        self.prefill_stall_budget = prefill_stall_budget  # `budget`; 0: none
        self.stats = stats or EngineStats()
        self.active: list[Active] = []  # in batch-row order
        self._incoming: queue.Queue = queue.Queue()
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._count = 0
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self._stopped = False
        self._crash: BaseException | None = None
        self._prefilling: Active | None = None  # a long prompt between its pieces (batching thread only)
        self._thread = threading.Thread(target=self._main, args=(load,), name=type(self).__name__, daemon=True)
        self._thread.start()

    def wait_loaded(self) -> Any:
        """Block until the model is loaded; returns it, or raises what loading raised."""
        self._loaded.wait()
        if self._load_error is not None:
            raise self._load_error
        return self.model

    # -- any thread -----------------------------------------------------------------------

    def submit(self, seq: Sequence, on_update: OnUpdate) -> Active:
        """Queue a sequence; call from the event loop that `on_update` must run on. Its timings are final once it is."""
        with self._lock:
            self._count += 1
        self._incoming.put(active := Active(seq, on_update, asyncio.get_running_loop()))
        return active

    def cancel(self, request_id: str) -> None:
        with self._lock:
            self._cancelled.add(request_id)
        self._incoming.put(None)  # wake the thread

    def num_unfinished(self) -> int:
        return self._count

    def cache_tokens(self) -> int:
        """Token positions the batch holds state for (a KV cache, encoder states), for the metrics."""
        return sum(len(a.seq.prompt_ids) + len(a.generated) for a in list(self.active))

    def dead(self) -> str | None:
        """Why the batching thread ended without being asked to (a step's error keeps it running)."""
        if self._loaded.is_set() and self._load_error is None and not self._thread.is_alive() and not self._stopped:
            return f"the batching thread ended: {self._crash or 'no error recorded'}"
        return None

    def stop(self) -> None:
        self._stopped = True
        self._incoming.put(StopIteration)
        self._thread.join(timeout=10)

    # -- for subclasses: run on the batching thread ----------------------------------------

    def setup(self) -> None:
        """Called once the model is loaded."""

    def join(self, joining: list[Active], packed: bool = False) -> list[int] | None:
        """Prefill joining prompts (whole, or what `extend` or a cache left) into `active`; maybe their first tokens."""
        raise NotImplementedError

    def extend(self, a: Active, end: int, packed: bool = False) -> list[int] | None:
        """Prefill `a`'s prompt from `a.prefilled` to `end` into `a.prefix`; `a.prefilled` is then `end`."""
        raise NotImplementedError

    def packs(self, joining: list[Active]) -> bool:
        """Whether `join` or `extend` can run in the pass that decodes the running rows (`packed`): it then returns
        their next tokens first (and the joiners' after them)."""
        return False

    def step(self) -> list[int]:
        """One forward pass over `active`: the next token of each."""
        raise NotImplementedError

    def to_prefill(self, a: Active) -> int:
        """The prompt tokens `a` has left to prefill (a subclass may first take some from a prefix cache)."""
        return len(a.seq.prompt_ids) - a.prefilled

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
        try:
            with torch.inference_mode():  # cheaper than no_grad: 31 -> 34 tok/s for one SmolLM2 request
                self._run()
        except BaseException as exc:  # the engine's death: `dead()` reports it
            self._crash = exc
            raise

    def _run(self) -> None:
        waiting: list[Active] = []
        while True:
            joining: list[Active] = []
            items, stepped = [], False
            try:
                items.append(self._incoming.get(block=not (self.active or waiting or self._prefilling)))
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
                cap = self._cap(queued=len(waiting) - (self._prefilling is None))
                if self._prefilling is not None:  # a long prompt's next piece goes first
                    joining = [self._prefilling]
                elif self.max_num_seqs > len(self.active) and waiting:
                    joining = budget.next_group(waiting, self.max_num_seqs - len(self.active), cap, self.to_prefill)
                    waiting = waiting[len(joining) :]
                    for a in joining:
                        a.joined = time.monotonic()
                    self.stats.observe(QUEUE, [a.joined - a.arrived for a in joining])
                if joining:
                    stepped = self._prefill(joining, cap)
                if self.active and not stepped:
                    self._advance(self.step())
            except Exception as exc:  # fail what is in flight, keep serving
                logger.exception("%s: step failed", type(self).__name__)
                # Joiners whose join failed are not in `active` yet; each fails once.
                for a in {id(a): a for a in (*self.active, *joining)}.values():
                    self._finish(a, str(exc))
                self._prefilling = None
                self.keep([])

    def _prefill(self, joining: list[Active], cap: int | None) -> bool:
        """Prefill a group whole, or the next piece of a prompt longer than the cap; True if the running rows' next
        tokens came in the same pass (`packs`)."""
        a = joining[0]
        packed = bool(self.active) and self.packs(joining)
        start, self._prefilling = 0 if packed else len(self.active), None  # unpacked, a join's tokens are the joiners'
        if self.chunks_prompts and cap is not None and self.to_prefill(a) > cap and a.seq.image_inputs is None:
            self._prefilling, tokens = a, self.extend(a, a.prefilled + cap, packed)
        else:
            tokens = self.join(joining, packed)
        if tokens is not None:
            self._advance(tokens, first_row=start)
        return packed

    def _cap(self, queued: int) -> int | None:
        return budget.pass_cap(self.max_num_batched_tokens, self.prefill_stall_budget, len(self.active), queued)

    def _drop_cancelled(self, waiting: list[Active], cancelled: set[str]) -> list[Active]:
        if self._prefilling is not None and self._prefilling.seq.request_id in cancelled:
            self._prefilling = None  # its cache so far goes with it
            self._done()
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
        now, ttft, itl = time.monotonic(), [], []
        for row, token in enumerate(tokens, start=first_row):
            a = self.active[row]
            (itl if a.generated else ttft).append(now - (a.last_token if a.generated else a.arrived))
            a.last_token = now
            a.first_token = a.first_token or now
            a.generated.append(token)
            try:
                ended = token in a.seq.eos_token_ids or (a.seq.grammar is not None and a.seq.grammar.accept(token))
            except RuntimeError as exc:  # fail this sequence, not the batch
                self._finish(a, str(exc))
                continue
            if ended or len(a.generated) >= a.seq.max_new_tokens:
                self._finish(a, None)
                continue
            if a.seq.stream:
                a.loop.call_soon_threadsafe(a.on_update, list(a.generated), False, None)
            rows.append(row)
        self.stats.observe(TTFT, ttft)
        self.stats.observe(ITL, itl)
        if len(rows) < len(self.active):
            self.keep(rows)

    def _finish(self, a: Active, error: str | None) -> None:
        self._done()
        a.loop.call_soon_threadsafe(a.on_update, list(a.generated), True, error)

    def _done(self) -> None:
        with self._lock:
            self._count -= 1
