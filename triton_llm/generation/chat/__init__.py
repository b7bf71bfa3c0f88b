"""Chat on top of any generation engine: templates, tool calling and reasoning (docs/tool-calling.md)."""

from triton_llm.generation.chat.engine import ChatEngine

__all__ = ["ChatEngine"]
