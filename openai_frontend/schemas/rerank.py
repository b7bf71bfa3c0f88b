"""/v1/rerank and /v1/score, vLLM's shapes (vllm/entrypoints/pooling/scoring/protocol.py).

Rerank is Jina's and Cohere's API: one `query`, many `documents`, results sorted by
relevance. Score pairs `text_1` with `text_2` (1:1, 1:N or N:N), in the order given; vLLM
also takes the same two lists as `queries` + `documents`, `queries` + `items` or
`data_1` + `data_2`. Texts only (vLLM's multimodal content parts are refused), given as strings
or as Cohere's and Jina's document objects `{"text": ...}` (vLLM 0.32 takes only strings), and `model`
is required: this server serves several models. vLLM's pooling extras that change nothing
here (`priority`, `cache_salt`, ...) are refused by name rather than ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from openai_frontend.errors import FieldValueError
from openai_frontend.schemas.common import RequestModel, StrictModel
from openai_frontend.schemas.embeddings import EmbeddingRequest
from openai_frontend.schemas.limits import MAX_SCORE_TEXTS


class TextDocument(StrictModel):
    """Cohere's and Jina's document object; only its text (other keys are refused by name)."""

    text: str


# Empty strings are taken, as vLLM takes them: a pair is still [CLS] query [SEP] [SEP]. Tagged by
# kind, so that an error names the document's field (`documents.0.text`), not a union member.
Text = Annotated[
    Annotated[str, Tag("str")] | Annotated[TextDocument, Tag("dict")],
    Discriminator(lambda v: "dict" if isinstance(v, (dict, TextDocument)) else "str"),
]
Texts = Annotated[list[Text], Field(max_length=MAX_SCORE_TEXTS)]

# vLLM's alternative names of score's two lists, in the order its union tries them.
SCORE_NAMES = (("queries", "documents"), ("queries", "items"), ("data_1", "data_2"), ("text_1", "text_2"))


class ScoringFields(RequestModel):
    """vLLM's `ScoringRequestMixin` fields that apply to text models."""

    model: str
    user: str | None = None
    # Cut each row (a cross-encoder's pair, or each text of an embedding model) to this many
    # tokens (-1: the model's limit) instead of refusing one over the limit.
    truncate_prompt_tokens: int | None = Field(None, ge=-1)
    # A cross-encoder's score through the model's activation (sigmoid for one label), or with
    # false the raw logit. Embedding models: cosine similarity either way.
    use_activation: bool | None = None

    # The same rule as embeddings' (an encoder model's rows either way).
    _truncate = field_validator("truncate_prompt_tokens")(EmbeddingRequest._truncate.__func__)

    def parameters(self, cross_encoder: bool) -> dict[str, Any]:
        """The encoder model's request parameters (docs/protocol.md)."""
        fields = {"truncate_prompt_tokens", "use_activation"} if cross_encoder else {"truncate_prompt_tokens"}
        return self.model_dump(include=fields, exclude_none=True)


class RerankRequest(ScoringFields):
    query: str
    documents: Annotated[Texts, Field(min_length=1)] | Text
    top_n: int = Field(0, ge=0)  # 0: all of them
    # Jina's and Cohere's: false leaves `document` out of each result (vLLM always sends it).
    return_documents: bool = True

    @field_validator("documents", mode="before")
    @classmethod
    def _not_empty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("at least one document must be given")  # vLLM: "At least one text_pair ..."
        return v

    @property
    def document_texts(self) -> list[str]:
        return _listed(self.documents)


class ScoreRequest(ScoringFields):
    text_1: Text | Texts | None = None
    text_2: Text | Texts | None = None
    queries: Text | Texts | None = None
    documents: Text | Texts | None = None
    items: Text | Texts | None = None
    data_1: Text | Texts | None = None
    data_2: Text | Texts | None = None

    @model_validator(mode="after")
    def _one_pair(self) -> ScoreRequest:
        given = [(a, b) for a, b in SCORE_NAMES if getattr(self, a) is not None and getattr(self, b) is not None]
        if not given:
            raise FieldValueError("text_1", "give text_1 and text_2 (or queries and documents)")
        first, second = self.names
        if not self.texts_1:
            raise FieldValueError(first, "at least one text must be given")
        if not self.texts_2:
            raise FieldValueError(second, "at least one text must be given")
        if len(self.texts_1) > 1 and len(self.texts_1) != len(self.texts_2):
            # vLLM: "Input lengths must be either 1:1, 1:N or N:N"
            raise FieldValueError(first, f"has {len(self.texts_1)} texts and {second} {len(self.texts_2)}: give 1 or N")
        return self

    @property
    def names(self) -> tuple[str, str]:
        """The names this request gave its two lists (vLLM's first match when several)."""
        for a, b in SCORE_NAMES:
            if getattr(self, a) is not None and getattr(self, b) is not None:
                return a, b
        return "text_1", "text_2"

    @property
    def texts_1(self) -> list[str]:
        return _listed(getattr(self, self.names[0]))

    @property
    def texts_2(self) -> list[str]:
        return _listed(getattr(self, self.names[1]))


def _listed(value: Text | list[Text]) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v.text if isinstance(v, TextDocument) else v for v in values]


# Responses, field for field vLLM's (built as plain data by the router; these document /openapi.json).


class RerankDocument(BaseModel):
    text: str | None = None
    multi_modal: list[dict[str, Any]] | None = None  # vLLM's; always null here


class RerankResult(BaseModel):
    index: int
    document: RerankDocument | None = None  # left out with return_documents false
    relevance_score: float


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    model: str
    usage: RerankUsage
    results: list[RerankResult]


class ScoreData(BaseModel):
    index: int
    object: str = "score"
    score: float


class ScoreUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0
    prompt_tokens_details: None = None


class ScoreResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[ScoreData]
    usage: ScoreUsage
