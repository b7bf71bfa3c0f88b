"""Token ids -> text deltas, one token at a time, and stop strings on that text.

Decoding each token alone breaks multi-byte characters (one emoji can span several byte
tokens) and drops the leading space that SentencePiece marks on a word. So, as vLLM and
TGI do, we decode a short window of tokens and emit only the text that grew past the
window's previous decoding, holding back anything that ends in an incomplete character.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Tokens of context decoded before the new ones: enough for byte-level merges and for
# SentencePiece's word-boundary spaces, as in vLLM (INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET).
_CONTEXT = 5


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any, context_ids: list[int], skip_special_tokens: bool = True):
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._ids = list(context_ids[-_CONTEXT:])
        self._prefix = 0  # start of the window decoded for comparison
        self._read = len(self._ids)  # end of the ids whose text has been emitted

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip, clean_up_tokenization_spaces=False)

    def add(self, token_ids: list[int]) -> str:
        """Append generated ids; return the text they complete (possibly empty)."""
        self._ids.extend(token_ids)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""


@dataclass
class StopStrings:
    """Stops text at the first stop string, holding back what could be the start of one."""

    stops: list[str]
    include: bool = False
    text: str = ""  # everything accepted so far
    sent: int = 0  # how much of `text` has been handed out
    stopped: bool = field(default=False, init=False)

    def add(self, delta: str) -> None:
        if self.stopped or not delta:
            return
        start = max(0, len(self.text) - max((len(s) for s in self.stops), default=0) + 1)
        self.text += delta
        hits = [(i, s) for s in self.stops if (i := self.text.find(s, start)) >= 0]
        if hits:
            i, stop = min(hits)
            self.text = self.text[: i + len(stop) if self.include else i]
            self.stopped = True

    def take(self, final: bool) -> str:
        """Text safe to hand out now: all of it once final or stopped, else short of a possible stop."""
        end = len(self.text)
        if not (final or self.stopped) and self.stops:
            end -= max(len(s) for s in self.stops) - 1
        if end <= self.sent:
            return ""
        out, self.sent = self.text[self.sent : end], end
        return out
