"""The request limits the schemas enforce, each a 400 naming its field, and why each is what it is.

The body size limit (`Settings.max_body_bytes`, a 413) and the nesting depth
(`schemas.raw.MAX_DEPTH`) hold before a field is read; these hold per field, whatever the
body limit is set to, so that no list in a request is unbounded. Free-form JSON values (a
JSON schema, `chat_template_kwargs`) are bounded by the body size and the depth only. Every
integer, free-form ones included, fits 64 bits (`schemas.integers`, one rule by type).
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

# Of those, how many run at once (serving.tensors.merge): each holds one of the model's
# admitted places (`max_concurrent_requests`, 2 × max_num_seqs by default), so one request
# never takes them all, and a request of 256 prompts is served by a model that admits 32.
MAX_PROMPTS_IN_FLIGHT = 32

# Token ids in one token-id prompt. vLLM refuses what exceeds the model's context; this
# bounds what reaches the model first: the longest contexts served today are about 1M tokens.
MAX_PROMPT_TOKEN_IDS = 1_048_576

# Texts in one embeddings request: OpenAI's documented limit.
MAX_EMBEDDING_INPUTS = 2048

# Chat messages: OpenAI's API refuses more than 2048 ("array too long"); vLLM has no limit.
MAX_MESSAGES = 2048

# Tools in one chat request: OpenAI's documented limit ("A max of 128 functions are
# supported"); vLLM has none. Every tool is rendered into the prompt.
MAX_TOOLS = 128

# Calls in one assistant message of a request. OpenAI and vLLM state none; as many as the
# tools one answer may call.
MAX_TOOL_CALLS = 128

# Content parts in one message. OpenAI and vLLM state none; the text parts are joined into
# one string, so more parts only add per-part work: 256 is more than any client sends.
MAX_CONTENT_PARTS = 256

# logit_bias entries. OpenAI and vLLM state none; vLLM checks each id against the vocabulary
# and applies every entry to every sequence at each step: 1024 bans or favours whole word lists.
MAX_LOGIT_BIAS = 1024

# stop_token_ids. vLLM states none; each one is checked after every token, as a stop string is.
MAX_STOP_TOKEN_IDS = 1024

# allowed_token_ids. vLLM states none; the list is a set of the vocabulary, and the largest
# vocabularies served are about 256k tokens.
MAX_ALLOWED_TOKEN_IDS = 262_144

# bad_words. vLLM refuses more than 128 token sequences after tokenization (VLLM_MAX_NUM_BAD_WORDS),
# and a word gives one or two (with and without a leading space).
MAX_BAD_WORDS = 128

# metadata pairs (store's tags; ignored here, as in vLLM): OpenAI's documented limit.
MAX_METADATA = 16

# structured_outputs `choice` strings. vLLM states none; each one is a branch of the grammar
# the engine compiles for the request before its first token.
MAX_CHOICES = 1024

# Documents of one rerank request, and texts on either side of a score request. vLLM states
# none; Cohere's rerank API recommends at most 1,000 documents. Each is one row of the model
# (a cross-encoder runs the query with every document), so this bounds one request's work
# as MAX_EMBEDDING_INPUTS bounds an embeddings request's.
MAX_SCORE_TEXTS = 1000
