# The README's commands. Each bootstraps what it needs (tools/bootstrap.sh, idempotent).
# `serve` runs the package's console script; the bench targets run dev scripts from tools/.
PY := .venv/bin/python

.PHONY: setup serve test quick unit bench-test bench bench-embeddings bench-embeddings-peers vllm-compat lifecycle-test lora-test scale-test image-test clean
setup:
	@tools/bootstrap.sh

serve: setup  ## start Triton (:8000 HTTP, :8001 gRPC, :8002 metrics) on model_repository/
	@exec .venv/bin/triton-llm serve $(ARGS)

test: setup  ## the whole suite, against a real tritonserver (the benchmark smoke runs are bench-test's)
	@tools/test.sh $(ARGS)

quick: setup  ## the edit loop: unit tests that start no subprocess and load no model (about a minute)
	@$(PY) -m pytest tests/unit -m "not slow" -q -n 2 $(ARGS)

unit: setup  ## every unit test (no server; some start subprocesses or build tiny models)
	@$(PY) -m pytest tests/unit $(ARGS)

bench-test: setup  ## the benchmark tools' smoke runs, each against its own stacks (CI runs it after make test)
	@$(PY) -m pytest -m bench $(ARGS)

bench: setup  ## ours vs vLLM's own server (ARGS=--quick for a smoke run); writes results/bench/<time>/
	@$(PY) -m tools.bench $(ARGS)

bench-embeddings: setup  ## embeddings/s with Triton's dynamic batching on and off; writes results/bench-embeddings/<time>/
	@$(PY) -m tools.bench_embeddings $(ARGS)

bench-embeddings-peers: setup  ## ours vs vLLM's pooling server and infinity-emb (own venv, made on first use); writes results/bench-embeddings-peers/<time>/
	@$(PY) -m tools.bench_embeddings --peers $(ARGS)

vllm-compat: setup  ## the vLLM engine's integration tests on the oldest vLLM we claim (VLLM_VERSION=, default 0.16.0), in a side venv
	@tools/vllm_compat.sh $(ARGS)

lifecycle-test: setup  ## stacks of their own killed, drained and restarted: engine deaths, SIGTERM drains, serve's exits, the container's command
	@flock /tmp/triton-it.lock $(PY) -m pytest -m lifecycle -p no:cacheprovider $(ARGS)

lora-test: setup  ## LoRA on a stack of its own: adapters from model.json and loaded at run time, against vLLM's offline output
	@flock /tmp/triton-it.lock $(PY) -m pytest -m lora -p no:cacheprovider $(ARGS)

scale-test: setup  ## tensor/pipeline parallel through Triton on vLLM's CPU build, a worker killed, a Ray cluster (installs Ray)
	@tools/scale_test.sh $(ARGS)

image-test: setup  ## build the CPU image (Dockerfile.cpu) and smoke-test it in Docker (as root: installs and starts dockerd if absent)
	@flock /tmp/triton-it.lock $(PY) -m tools.image $(ARGS)

clean:  ## remove the caches (venv, Triton copy, converted models)
	rm -rf .venv .cache
