"""The vLLM engine: vLLM's AsyncLLM behind `base.Engine`, continuous batching vLLM's own.

`engine` (the Engine), `args` (model.json -> AsyncEngineArgs), `sampling` (`sampling_parameters`
-> SamplingParams), `errors` (vLLM's refusals -> InvalidInput naming the field), `lora` (adapters),
`stats` (vLLM's stat logger -> EngineStats), `compat` (what differs between the vLLM versions we
support). vLLM used as a library by the other parts (parsers, structured-output checks) is
`triton_llm.generation.vllm_library`, not this package.
"""
