"""The product's entry points: `serve` (Triton + the OpenAI frontend), `make_repo` (a
repository entry from KServe's Hugging Face runtime arguments) and `tritonserver` (installs
and launches the real Triton from the `nvidia-pytriton` wheel)."""
