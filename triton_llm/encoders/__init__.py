"""Encoder models (embeddings, fill-mask, token and sequence classification) for Triton's
Python backend, batched by Triton's dynamic batcher: one response per request.

  - `runner`: the `TritonPythonModel` every encoder entry's model.py imports;
  - `engine`: tokenising, length-sorted forward passes, per-task outputs;
  - `pooling`: sentence-transformers pooling, read from the model's own files.
"""
