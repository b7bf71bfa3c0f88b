"""The request limits the schemas enforce, each a 400 naming its field, and why each is what it is.

The body size limit (`Settings.max_body_bytes`, a 413) and the nesting depth
(`schemas.raw.MAX_DEPTH`) hold before a field is read; these hold per field.
"""

from __future__ import annotations

# Choices per prompt. OpenAI allows 128; vLLM has no limit. Every choice is a sequence the
# engine runs side by side, so one request could fill the batch: 16 keeps that bounded.
MAX_N = 16

# Stop strings. OpenAI documents 4; vLLM has no limit. 16 leaves room for clients that stop
# on several turn markers, while bounding the search the engine runs after every token.
MAX_STOP = 16

# Candidates per token: completions' `logprobs`, chat's `top_logprobs`. OpenAI: 5 and 20;
# vLLM's default `max_logprobs` is 20, and the engine refuses more.
MAX_LOGPROBS = 20

# Prompts in one completions request. OpenAI and vLLM state none; each prompt is one Triton
# request with `n` choices, so this bounds what one HTTP request can queue.
MAX_PROMPTS = 256

# Texts in one embeddings request: OpenAI's documented limit.
MAX_EMBEDDING_INPUTS = 2048
