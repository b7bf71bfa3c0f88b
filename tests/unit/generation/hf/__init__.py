"""The transformers engine's tests (triton_llm/generation/engines/hf/)."""
