"""POST /tokenize and /detokenize, vLLM's (served at its root, here under the route prefix like
every other route): the model answers from its own tokenizer and chat template, so the
frontend needs none (docs/protocol.md, `tokenize_only`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from openai_frontend.backend import ModelServer, Triton, require_model
from openai_frontend.errors import BadRequest
from openai_frontend.middleware import request_id
from openai_frontend.schemas.tokenize import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from openai_frontend.serving import tensors

router = APIRouter()


@router.post("/tokenize", response_model=TokenizeResponse)
async def tokenize(body: TokenizeRequest, request: Request, triton: Triton):
    model = await _model_name(triton, body.model)
    chat = body.messages is not None
    info = await require_model(triton, model, "chat" if chat else "completions")
    if chat:
        values = tensors.tokenize_inputs(
            messages=[m.for_template() for m in body.messages or []],
            chat_template_kwargs=body.template_kwargs(),
            tools=[t.model_dump(exclude_none=True) for t in body.tools or []],
            add_special_tokens=bool(body.add_special_tokens),  # vLLM's default for messages: false
            return_token_strs=bool(body.return_token_strs),
        )
    else:
        values = tensors.tokenize_inputs(
            prompt=body.prompt,
            add_special_tokens=body.add_special_tokens is not False,  # for a prompt: true
            return_token_strs=bool(body.return_token_strs),
        )
    tensors.check_tokenize(info, values)
    fields = {"text_input": "messages" if chat else "prompt"}
    out = await tensors.tokenized(triton, info.name, values, fields, request_id(request))  # an adapter: its base
    return TokenizeResponse(
        count=len(out.tokens), max_model_len=out.max_model_len, tokens=out.tokens, token_strs=out.token_strs
    )


@router.post("/detokenize", response_model=DetokenizeResponse)
async def detokenize(body: DetokenizeRequest, request: Request, triton: Triton):
    model = await _model_name(triton, body.model)
    info = await require_model(triton, model, "completions")
    values = tensors.tokenize_inputs(prompt=body.tokens)
    tensors.check_tokenize(info, values)
    out = await tensors.tokenized(triton, info.name, values, {"input_ids": "tokens"}, request_id(request))
    return DetokenizeResponse(prompt=out.text)


async def _model_name(triton: ModelServer, name: str | None) -> str:
    """vLLM's rule: `model` may be left out; here when exactly one generation model is served."""
    if name is not None:
        return name
    served = sorted(n for n, info in (await triton.models()).items() if info.generate)
    if len(served) != 1:
        raise BadRequest(
            f"model: is required: this server serves {len(served)} generation models {served}", param="model"
        )
    return served[0]
