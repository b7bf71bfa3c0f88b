"""Load shedding: a bound on the requests a generation model holds, running plus waiting.

Past the bound a request is refused at once, on Triton's thread, with `Unavailable(kind=
"overloaded")` (429 with Retry-After through the frontend), instead of waiting in the engine's
queue behind work it cannot overtake: TGI's `--max-concurrent-requests`. Without it, a burst
of 1,000 completions all queued (p99 36 s) and made every other request wait as long.
"""

from __future__ import annotations

import threading

from triton_llm.errors import Unavailable
from triton_llm.settings import GenerationSettings

# Seconds a refused client is told to wait: about one batch's worth of work on a small model.
RETRY_AFTER_S = 1


def bound(settings: GenerationSettings, max_num_seqs: int) -> int:
    """model.json's `max_concurrent_requests`, else twice the engine's batch (one running, one waiting)."""
    given = settings.max_concurrent_requests
    return given if given is not None else 2 * max_num_seqs


class Admission:
    """A counter of admitted requests, safe across Triton's thread and the engine's loop."""

    def __init__(self, limit: int):
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def admit(self) -> bool:
        """Take a place if one is free; False: the model is full and the request must be refused."""
        with self._lock:
            if self._count >= self.limit:
                return False
            self._count += 1
            return True

    def release(self) -> None:
        """Give back the place of a request whose work is over (its final response is queued)."""
        with self._lock:
            self._count -= 1

    def refusal(self, model: str) -> Unavailable:
        return Unavailable(
            f"{model} is serving its limit of {self.limit} requests (max_concurrent_requests); retry later",
            kind="overloaded",
            retry_after=RETRY_AFTER_S,
        )
