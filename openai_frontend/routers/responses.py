"""/v1/responses and its stored responses (serving/responses.py builds the answers; the state
lives in serving/responses_state.py and the store, responses_store.py)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from openai_frontend.backend import Triton, require_model
from openai_frontend.endpoints import Endpoint
from openai_frontend.media import from_settings
from openai_frontend.middleware import request_id
from openai_frontend.schemas.responses import ResponsesRequest
from openai_frontend.serving import responses
from openai_frontend.serving.disconnect import cancel_on_disconnect
from openai_frontend.serving.responses_state import stream

router = APIRouter()


@router.post("/v1/responses")
@cancel_on_disconnect
async def create_response(body: ResponsesRequest, request: Request, triton: Triton):
    info = await require_model(triton, body.model, Endpoint.RESPONSES)
    state = request.app.state.responses
    turn = await responses.prepare(state, body, from_settings(request.app.state.settings))
    if body.background:
        return await responses.background(state, triton, info, turn, request_id(request))
    if body.stream:
        return await stream(
            request, responses.numbered(responses.events(state, triton, info, turn, request_id(request)))
        )
    return await responses.response(state, triton, info, turn, request_id(request))


@router.get("/v1/responses/{response_id}")
async def retrieve_response(response_id: str, request: Request):
    return (await responses.stored(request.app.state.responses, response_id)).response


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, request: Request):
    return await responses.delete(request.app.state.responses, response_id)


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(response_id: str, request: Request):
    return await responses.cancel(request.app.state.responses, response_id)


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
):
    return await responses.input_items(request.app.state.responses, response_id, limit, order, after)
