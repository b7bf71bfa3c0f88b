"""The vLLM engine's tests (triton_llm/generation/engines/vllm/)."""
