"""OpenAI request and response models, one module per endpoint; `common` holds the shared sampling fields."""
