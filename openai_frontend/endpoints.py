"""The endpoints the frontend serves, as one typed set: the key of which models serve each
(`served_by`), of the field table (`serving.fields`) and of the metrics' labels. A new
endpoint adds its member and its rule here.

A member is its string (`Endpoint.CHAT == "chat"`, and `str()` and f-strings give "chat"), so
labels and messages read as before. Written out rather than `enum.StrEnum`: Python 3.10 is
supported (pyproject), and 3.10 has no StrEnum.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openai_frontend.backend import ModelInfo


class Endpoint(str, Enum):
    COMPLETIONS = "completions"
    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    SCORE = "score"  # /rerank and /score
    DETOKENIZE = "detokenize"  # /tokenize is a chat's or a completion's: it names their fields
    CLASSIFY = "classify"  # vLLM's /classify: a sequence classifier
    POOLING = "pooling"  # vLLM's /pooling: an encoder with a pooling task (serving.pooling)
    RESPONSES = "responses"  # /v1/responses, served on the chat layer
    MESSAGES = "messages"  # Anthropic's /v1/messages, served on the chat layer

    def __str__(self) -> str:
        return self.value

    def served_by(self, info: ModelInfo) -> bool:
        """Whether the model `info` can serve this endpoint."""
        return {
            Endpoint.COMPLETIONS: info.generate,
            Endpoint.CHAT: info.chat,
            Endpoint.EMBEDDINGS: info.embed,
            # a cross-encoder's pairs, or cosine similarity of embeddings (as vLLM)
            Endpoint.SCORE: info.cross_encoder or info.embed,
            Endpoint.DETOKENIZE: info.generate,
            Endpoint.CLASSIFY: "logits" in info.outputs,
            Endpoint.POOLING: info.embed or "logits" in info.outputs or "token_logits" in info.outputs,
            Endpoint.RESPONSES: info.chat,
            Endpoint.MESSAGES: info.chat,
        }[self]
