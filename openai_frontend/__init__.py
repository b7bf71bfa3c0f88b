"""OpenAI-compatible HTTP frontend over Triton's gRPC API (see README)."""
