"""Encoder models (embeddings, fill-mask, token and sequence classification, cross-encoders) for Triton's
Python backend, batched by Triton's dynamic batcher: one response per request.

  - `runner`: the `TritonPythonModel` every encoder entry's model.py imports;
  - `protocol`: the tensors of each task and the parsing of a request (no Triton, no torch);
  - `engine`: the task-neutral part: tokenising with length checks, length-sorted padded
    forward passes shared by all queued requests;
  - `heads`: one class per task (which model class, checks, per-text results, output
    arrays) and `TASKS`, the one registry of them;
  - `pooling`: sentence-transformers pooling, read from the model's own files;
  - `activation`: a cross-encoder's score from its logit, by vLLM's rule.
"""
