"""Generation models (text generation, text2text) for Triton's Python backend, decoupled.

- `types`: the engine-neutral request and output types (`GenerateRequest`, `GenerationChunk`);
- `protocol`: the tensor protocol (docs/protocol.md): input tensors -> `GenerateRequest`,
  `GenerationChunk` -> output tensors; pure Python and numpy;
- `runner`: the `TritonPythonModel` every generation entry's model.py imports; it owns the
  threads and the response senders;
- `engines/`: vLLM's AsyncLLM and the transformers engine behind one `Engine` protocol.
"""
