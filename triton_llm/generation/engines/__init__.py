"""Generation engines behind one interface (`base.Engine`): `vllm/` (vLLM's AsyncLLM) and `hf/`
(transformers with our continuous batching), with the engine-neutral pieces beside them
(`base`: the interface and prompt helpers; `limits`: the output-length check).

Engines depend on `generation.types`, never on the chat layer or the runner; the factory
(`triton_llm.generation.factory`) chooses one and wraps it in the chat layer.
"""
