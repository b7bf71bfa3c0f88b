"""What one pass of the transformers engine prefills: how many prompt tokens, and which waiting prompts join.

Every prompt token in a pass delays each decoding row by its compute (on a CPU, about 1.3 ms a token for SmolLM2-135M
on 2 cores), so the stall a prefill causes is its tokens times the rows it holds up. `max_num_batched_tokens` caps the
tokens; `prefill_stall_budget` caps their product while one prompt joins alone: it is prefilled in small pieces
beside a full batch, in large ones beside a few running rows, and whole (up to the cap) into an empty batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

MIN_PIECE = 16  # a prefix-cache block: a smaller piece costs a pass's overhead for little prefill


def pass_cap(cap: int | None, stall_budget: int, decoding: int, queued: int = 0) -> int | None:
    """Prompt tokens a pass may prefill: `cap` (None: any), and while `decoding` rows wait on it and no other prompt
    is `queued` behind the joining one, at most `stall_budget` over their number (0: no budget), though never under
    `MIN_PIECE`. A queue is served at the cap: prompts in pieces join one at a time, and rows left waiting to join
    lose more than the running rows gain (measured: docs/benchmarks.md, "The prefill stall budget")."""
    if not (stall_budget and decoding) or queued > 0:
        return cap
    share = max(MIN_PIECE, stall_budget // decoding)
    return share if cap is None else min(cap, share)


def next_group(waiting: list[T], room: int, cap: int | None, to_prefill: Callable[[T], int]) -> list[T]:
    """The longest run of waiting prompts, in arrival order, whose padded size (rows x most tokens left to prefill)
    fits the cap; at least one, which a caller prefills in pieces when it alone is over."""
    if cap is None:
        return waiting[:room]
    group, width = waiting[:1], to_prefill(waiting[0])
    for a in waiting[1:room]:
        width = max(width, to_prefill(a))
        if (len(group) + 1) * width > cap:
            break
        group.append(a)
    return group
