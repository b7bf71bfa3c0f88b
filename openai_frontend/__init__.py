"""OpenAI-compatible HTTP frontend over Triton's gRPC API (docs/architecture.md): `app`
(create_app), `routers/` (one per endpoint), `schemas/` (request and response models),
`serving/` (requests to tensors and steps to responses), `backend` and `triton_client`
(Triton behind a Protocol), `errors` (OpenAI's error shape)."""
