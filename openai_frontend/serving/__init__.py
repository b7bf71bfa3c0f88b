"""What the routers call to serve a request: OpenAI request -> model tensors -> decoded steps."""
