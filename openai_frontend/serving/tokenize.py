"""/tokenize and /detokenize served: one `tokenize_only` request, answered by the model's own
tokenizer and chat template (docs/protocol.md), so the frontend needs none. The router only
resolves the model and makes one call here.
"""

from __future__ import annotations

from typing import Any

from openai_frontend.backend import ModelInfo, ModelServer, Outputs
from openai_frontend.endpoints import Endpoint
from openai_frontend.errors import BadRequest, InvalidField
from openai_frontend.schemas.tokenize import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from openai_frontend.serving import tensors
from openai_frontend.serving.fields import for_endpoint


def endpoint(body: TokenizeRequest) -> Endpoint:
    """Messages are tokenized as a chat's prompt, a text as a completion's: the model must serve
    that endpoint, and a refused input is named as there."""
    return Endpoint.CHAT if body.messages is not None else Endpoint.COMPLETIONS


async def tokenize(triton: ModelServer, info: ModelInfo, body: TokenizeRequest, rid: str) -> TokenizeResponse:
    if body.messages is not None:
        values = _inputs(
            messages=[m.for_template() for m in body.messages],
            chat_template_kwargs=body.template_kwargs(),
            tools=[t.model_dump(exclude_none=True) for t in body.tools or []],
            add_special_tokens=bool(body.add_special_tokens),  # vLLM's default for messages: false
            return_token_strs=bool(body.return_token_strs),
        )
    else:
        values = _inputs(
            prompt=body.prompt,
            add_special_tokens=body.add_special_tokens is not False,  # for a prompt: true
            return_token_strs=bool(body.return_token_strs),
        )
    out = await _answer(triton, info, values, endpoint(body), rid)
    ids, length = out.get("prompt_token_ids"), out.get("max_model_len")
    tokens = [int(i) for i in ids.reshape(-1)] if ids is not None else []
    return TokenizeResponse(
        count=len(tokens),
        max_model_len=int(length.reshape(-1)[0]) if length is not None else 0,
        tokens=tokens,
        token_strs=tensors.strings(out["token_strs"]) if "token_strs" in out else None,
    )


async def detokenize(triton: ModelServer, info: ModelInfo, body: DetokenizeRequest, rid: str) -> DetokenizeResponse:
    out = await _answer(triton, info, _inputs(prompt=body.tokens), Endpoint.DETOKENIZE, rid)
    return DetokenizeResponse(prompt="".join(tensors.strings(out.get("text_output"))))


def _inputs(
    *,
    prompt: str | list[int] | None = None,
    messages: list[dict[str, Any]] | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    add_special_tokens: bool | None = None,
    return_token_strs: bool = False,
) -> dict[str, Any]:
    """The tensors of a `tokenize_only` request: a text or messages to tokenize, or ids to decode."""
    values = {**tensors.prompt_values(prompt, messages), "tokenize_only": True}
    if chat_template_kwargs is not None:
        values["chat_template_kwargs"] = chat_template_kwargs
    if tools:
        values["tools"] = tools
    if add_special_tokens is not None:
        values["add_special_tokens"] = add_special_tokens
    if return_token_strs:
        values["return_token_strs"] = True
    return values


async def _answer(
    triton: ModelServer, info: ModelInfo, values: dict[str, Any], endpoint: Endpoint, rid: str
) -> Outputs:
    """The model's answer (an adapter's name: its base model's tokenizer), once it is known to
    answer `tokenize_only` and the other inputs of `values`; a refused input named as the client's."""
    if "tokenize_only" not in info.inputs:
        raise BadRequest(f"The model '{info.name}' cannot tokenize: it declares no tokenize_only input", param="model")
    tensors.check_declared(info, values)
    outputs: Outputs = {}
    try:
        async for response in triton.generate(info.name, values, rid):
            outputs.update(response)
    except InvalidField as exc:
        raise for_endpoint(exc, endpoint) from None
    return outputs
