"""The transformers engine: text generation and text2text with our continuous batching.

`engine` (the Engine: requests -> sequences, tokens -> text deltas), `scheduler` (the batching
thread: joins and leaves), `batching` (one step: causal or encoder-decoder), `sampling`,
`structured` (structured outputs with xgrammar), `detokenizer` (incremental text, stop strings),
and CPU kernels: `attention` (grouped eager attention), `linear` (oneDNN-packed linears).
"""
