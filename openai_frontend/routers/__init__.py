"""One FastAPI router per endpoint: routing only; the work is in `openai_frontend.serving`."""
