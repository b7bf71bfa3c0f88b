"""Fields clients send that vLLM 0.32's server takes on completions and chat, beyond the
sampling fields of `common.SamplingFields` (a base of it; docs/protocol.md lists them all).

vLLM's own: `stop_token_ids`, `bad_words`, `allowed_token_ids` (SamplingParams fields, honoured
by both engines), `priority` (honoured where the engine schedules by priority, else the model
refuses it naming the engine), `use_beam_search` and `length_penalty` (vLLM's beam search; the
transformers engine refuses it). OpenAI's that vLLM accepts and ignores (its `OpenAIBaseModel`
takes any extra field): `store`, `metadata`, `service_tier`, `prediction`, and `user` (in
SamplingFields). Here they are named fields of OpenAI's shapes, so a misspelt field is still
refused; nothing of them reaches the model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from openai_frontend.schemas.limits import MAX_ALLOWED_TOKEN_IDS, MAX_BAD_WORDS, MAX_METADATA, MAX_STOP_TOKEN_IDS

TokenId = Annotated[int, Field(ge=0)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class Prediction(BaseModel):
    """OpenAI's predicted output (a speed-up hint; vLLM ignores it, and so do we)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["content"]
    content: str | list[_Part]


class ClientFields(BaseModel):
    # vLLM's (SamplingParams / request options)
    stop_token_ids: Annotated[list[TokenId], Field(max_length=MAX_STOP_TOKEN_IDS)] | None = Field(
        None, description="Stop when one of these token ids is generated."
    )
    bad_words: Annotated[list[str], Field(max_length=MAX_BAD_WORDS)] | None = Field(
        None, description="Words never generated (vLLM's rule: their last token is banned after the others)."
    )
    allowed_token_ids: Annotated[list[TokenId], Field(max_length=MAX_ALLOWED_TOKEN_IDS)] | None = Field(
        None, description="Generate only these token ids."
    )
    priority: int = Field(0, description="Lower runs first; other than 0 needs a model scheduling by priority.")
    use_beam_search: bool = Field(False, description="vLLM's beam search, `n` beams (vLLM engine only).")
    length_penalty: float = Field(1.0, description="Beam search's length penalty.")
    # OpenAI's, accepted and ignored as vLLM does
    store: bool | None = None
    metadata: Annotated[dict[str, str], Field(max_length=MAX_METADATA)] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    prediction: Prediction | None = None

    def client_sampling(self) -> dict[str, Any]:
        """The model's `sampling_parameters` keys of these fields, those that change anything."""
        params: dict[str, Any] = {}
        if self.stop_token_ids:
            params["stop_token_ids"] = list(self.stop_token_ids)
        if self.bad_words:
            params["bad_words"] = list(self.bad_words)
        if self.allowed_token_ids is not None:
            params["allowed_token_ids"] = list(self.allowed_token_ids)
        if self.priority:
            params["priority"] = self.priority
        if self.use_beam_search:
            params.update(use_beam_search=True, length_penalty=self.length_penalty)
        return params
