"""Rows of one request sent to a batching model in pieces of its `max_batch_size`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from openai_frontend import request_log
from openai_frontend.backend import Outputs


async def in_pieces(rows: int, size: int, rid: str, run: Callable[[slice, str], Awaitable[Outputs]]) -> Outputs:
    """Every row's outputs, concatenated. The pieces go at once (Triton batches them together
    again), each with its own request id; one refused (a full queue's 429, a row's 400)
    cancels the others, whose work is not wanted."""
    size = max(size, 1)
    starts = range(0, rows, size)
    ids = [rid] if len(starts) == 1 else [f"{rid}-{i}" for i in range(len(starts))]
    pieces = [asyncio.ensure_future(run(slice(s, s + size), i)) for s, i in zip(starts, ids, strict=True)]
    try:
        results = await asyncio.gather(*pieces)
    finally:
        for piece in pieces:
            piece.cancel()
    outputs = {name: np.concatenate([r[name] for r in results]) for name in results[0]}
    if (record := request_log.current()) is not None and "num_input_tokens" in outputs:
        record.add_tokens(int(outputs["num_input_tokens"].sum()), None)
    return outputs
