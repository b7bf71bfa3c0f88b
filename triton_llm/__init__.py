"""Triton Python-backend models for LLM serving (docs/architecture.md):

- `generation/`: decoupled text generation and text2text on vLLM or transformers;
- `encoders/`: embeddings and the encoder tasks on Triton's dynamic batching;
- `settings`, `hf_loading`, `tasks`, `errors`, `metrics`, `triton_log`: what both share;
- `cli/`: the `triton-llm` entry points (serve, make-repo, tritonserver).
"""

__version__ = "0.1.0"
