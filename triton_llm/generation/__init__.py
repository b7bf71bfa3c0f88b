"""Generation models (text generation, text2text) for Triton's Python backend, decoupled.

- `types`: the engine-neutral request and output types (`GenerateRequest`, `GenerationChunk`);
- `protocol`: the tensor protocol (docs/protocol.md): input tensors -> `GenerateRequest`,
  `GenerationChunk` -> output tensors; pure Python and numpy;
- `runner`: the `TritonPythonModel` every generation entry's model.py imports; it owns the
  threads and the response senders;
- `factory`: model.json parsed once, the engine it names (in the chat layer), its extra inputs;
- `engines/`: vLLM's AsyncLLM (`vllm/`) and the transformers engine (`hf/`) behind one `Engine`
  protocol; `chat/`: templates, tool calling and reasoning over either; `vllm_library`: vLLM
  used as a library by `chat/` and `engines/hf/`.
"""
