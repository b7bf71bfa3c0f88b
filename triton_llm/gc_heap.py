"""Leave what a model's startup made out of Python's garbage-collector scans.

A full collection walks every tracked object: in a stub holding torch, transformers and
vLLM that is hundreds of thousands, tens to hundreds of ms with the GIL held, a stall of
every request in flight. Objects made at startup live as long as the model, so they are
frozen once it is ready, as vLLM's own API server and engine core do (`freeze_gc_heap`).
"""

from __future__ import annotations

import gc


def freeze_heap() -> int:
    """Collect, then freeze what is left; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
