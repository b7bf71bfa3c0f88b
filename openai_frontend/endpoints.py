"""The endpoints the frontend serves, as one typed set: the key of what a model must serve
(`backend.ModelInfo.serves`), of the field table (`serving.fields`) and of the metrics' labels.

A member is its string (`Endpoint.CHAT == "chat"`, and `str()` and f-strings give "chat"), so
labels and messages read as before. Written out rather than `enum.StrEnum`: Python 3.10 is
supported (pyproject), and 3.10 has no StrEnum.
"""

from __future__ import annotations

from enum import Enum


class Endpoint(str, Enum):
    COMPLETIONS = "completions"
    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    SCORE = "score"  # /rerank and /score: a cross-encoder's pairs, or embeddings' cosine
    DETOKENIZE = "detokenize"  # /tokenize is a chat's or a completion's: it names their fields

    def __str__(self) -> str:
        return self.value
