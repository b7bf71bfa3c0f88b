"""Triton Python-backend models for LLM serving: vLLM and transformers engines behind one
tensor protocol (docs/protocol.md)."""

__version__ = "0.1.0"
