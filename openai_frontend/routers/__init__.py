"""One FastAPI router per endpoint, each routing only; the work is in `openai_frontend.serving`.

Every route follows one pattern (vLLM's `entrypoints/openai/*/api_router.py` before its
serving classes), and a new route copies it:
  1. take the validated body (`schemas/<endpoint>.py`), the `Request` and `triton: Triton`
     (backend.py, from `app.state`); a route that does model work is `@cancel_on_disconnect`;
  2. resolve the model: `info = await require_model(triton, body.model, Endpoint.X)` (a new
     endpoint adds its member and the models that serve it in endpoints.py, and the names of
     its fields, where the model's differ, in `serving/fields.py`);
  3. make one serving call, `serving/<endpoint>.py`, with `request_id(request)`, and return
     what it gives; a streamed request returns `stream_response(request, Endpoint.X, chunks)`
     (sse.py) around the serving module's `chunks(...)`.
The router then registers in `app.create_app`. Nothing else goes in a router: responses, chunks
and field names are built in `serving/`.
"""
