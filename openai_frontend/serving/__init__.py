"""What the routers call to serve a request: one module per endpoint (chat, completions,
embeddings, scoring, tokenize, models, health) builds its answer, on shared pieces: tensors
(OpenAI request -> model tensors -> decoded steps), accumulate (steps -> choices and usage),
logprobs, fields (model input names -> the client's fields), pieces, disconnect."""
