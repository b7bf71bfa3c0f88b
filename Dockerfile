# triton-llm on NVIDIA's Triton image with vLLM and the Python backend: the OpenAI frontend
# (:9000, /openai/v1; its /metrics carries Triton's metrics too) in front of tritonserver
# (HTTP :8000, gRPC :8001, metrics :8002, on the container's loopback only).
#
# Build (needs access to nvcr.io; TRITON_TAG picks the NGC release, 26.03 = Triton 2.67):
#   docker build -t triton-llm .
#   docker build --build-arg TRITON_TAG=<yy.mm> -t triton-llm .
# The vLLM engine runs on the image's own vLLM, from 0.16.0 (what 26.03 ships, the oldest we
# support: `make vllm-compat` runs its tests on it) to 0.32; the differences are in
# triton_llm/generation/engines/vllm/compat.py and generation/vllm_library.py. On vLLM 0.16
# tool calling and reasoning output (model.json's tool_call_parser, reasoning_parser) are
# refused: they need a newer vLLM's parsers. Older tags ship older vLLMs (26.02: 0.13.0,
# 25.10: 0.10.2, 24.10: 0.5.x), which the vLLM engine does not support; later tags build on
# NVIDIA's vLLM image, untested here.
#
# Serve a model repository from the host, mounted at /models (read-only is fine):
#   docker run --rm --gpus all --shm-size=1g -p 9000:9000 -v $PWD/my_repo:/models triton-llm
# add -e TRITON_LLM_API_KEY=... to require a bearer key on /openai/v1, and --stop-timeout 60:
# on SIGTERM the requests in flight get 30 s to finish (-e TRITON_LLM_DRAIN_TIMEOUT=<s>), then
# the models unload (up to 15 s more); Docker's default of 10 s would kill the container
# mid-drain (`docker stop -t 60` for one stop).
# Triton's own ports stay on the container's loopback: they take no API key and no size limit,
# and let anyone who reaches them load or unload models and register shared memory (and, in
# Triton 2.51, crash it with a deeply nested JSON body). To publish them anyway, append
# `--triton-host 0.0.0.0` to the command and add -p 8000:8000 -p 8001:8001 -p 8002:8002.
#
# TLS on the frontend's port (docs/operations.md#tls-cors-and-the-request-log): mount the key
# and certificate and name them; a renewed pair written over them is served within a second,
# without a restart. Add TRITON_LLM_SSL_CA_CERTS to require client certificates it signed.
#   docker run ... -v $PWD/certs:/certs:ro -e TRITON_LLM_SSL_KEYFILE=/certs/tls.key \
#     -e TRITON_LLM_SSL_CERTFILE=/certs/tls.crt triton-llm
#   curl --cacert certs/ca.crt https://localhost:9000/health/ready
# CORS for browser clients: -e TRITON_LLM_ALLOWED_ORIGINS=https://app.example (default: none);
# one JSON line per request on stderr: -e TRITON_LLM_LOG_REQUESTS=1 (prompts: TRITON_LLM_LOG_PROMPTS=1).
#
# Or write the repository entry for a hub model in the container and serve it at once
# (`triton-llm make-repo` takes KServe's Hugging Face runtime arguments: --model_id,
# --model_dir, --model_name, --task, --backend, --dtype, ...). The container runs as uid
# 1000, which must be able to write my_repo; the named volume keeps the download, which
# model.json refers to:
#   docker run --rm --gpus all --shm-size=1g -p 9000:9000 -e HF_TOKEN \
#     -v hf-cache:/home/triton-server/.cache/huggingface -v $PWD/my_repo:/models \
#     triton-llm triton-llm make-repo --model_id hf://Qwen/Qwen2.5-0.5B-Instruct \
#       --model_name qwen --repository /models --serve --host 0.0.0.0
#
# The demo repository is copied to /opt/triton-llm/model_repository for reference only: its
# entries point at ../../../.cache/models, which the image does not have. Mount yours at
# /models or generate one with `triton-llm make-repo` as above.

ARG TRITON_TAG=26.03
FROM nvcr.io/nvidia/tritonserver:${TRITON_TAG}-vllm-python-py3

LABEL org.opencontainers.image.title="triton-llm" \
      org.opencontainers.image.description="Triton Inference Server with vLLM/transformers Python-backend models and an OpenAI-compatible frontend"

# tini, pinned to Ubuntu 22.04's build (the base of the 24.xx images); on a base from
# another Ubuntu release pass the version `apt-cache policy tini` shows there.
ARG TINI_VERSION=0.19.0-1
RUN apt-get update \
    && apt-get install -y --no-install-recommends "tini=${TINI_VERSION}" \
    && rm -rf /var/lib/apt/lists/*

# TRITON_HOME: `triton-llm serve` launches $TRITON_HOME/bin/tritonserver with the backends
# in $TRITON_HOME/backends (the image's Triton) instead of a pytriton copy under .cache/.
ENV TRITON_HOME=/opt/tritonserver \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/triton-server \
    HF_HOME=/home/triton-server/.cache/huggingface

WORKDIR /opt/triton-llm

# The package and the frontend into the image's Python, whose vLLM, torch and numpy stay as
# they are (numpy<2 is only for the pytriton wheel's Triton 2.51): they are constraints, so a
# dependency that asked for other versions fails the build instead of replacing them. (Not the `serve` extra: it brings pytriton, a second Triton.)
# A regular install: the code lands in site-packages and the console scripts `triton-llm`
# and `triton-llm-frontend` on PATH, so the sources copied here are removed afterwards.
# tools/ (dev scripts: benchmarks, probes) is not installed and not copied.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY pyproject.toml README.md ./
COPY triton_llm/ triton_llm/
COPY openai_frontend/ openai_frontend/
RUN pip list --format=freeze | grep -iE '^(torch|vllm|numpy)==' > /tmp/image-constraints.txt \
    && pip install --no-cache-dir --constraint /tmp/image-constraints.txt ".[frontend]" \
    && rm -rf /tmp/image-constraints.txt build ./*.egg-info pyproject.toml README.md triton_llm openai_frontend

COPY model_repository/ model_repository/

# NVIDIA's image has the non-root user triton-server (uid and gid 1000, no home folder):
# reuse it (create it on a base without it) and give it a writable home for the caches of
# Hugging Face, vLLM and torch.
RUN (id -u triton-server > /dev/null 2>&1 || useradd --uid 1000 --user-group --no-create-home triton-server) \
    && [ "$(id -u triton-server):$(id -g triton-server)" = "1000:1000" ] \
    && mkdir -p "${HF_HOME}" \
    && chown -R 1000:1000 "${HOME}"

# The OpenAI frontend (routes under /openai/v1, probes /health/live and /health/ready,
# Prometheus /metrics with Triton's). Triton's 8000-8002 listen on 127.0.0.1 (see above).
EXPOSE 9000

# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 1000:1000

# Healthy once Triton and every model are ready (the frontend's /health/ready asks Triton);
# model loading (a download, CUDA graphs) can take minutes, hence the long start period.
# Assumes the default frontend port; over HTTPS when the TLS variables below are set.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
    CMD ["python3", "-m", "openai_frontend.probe", "9000"]

# tini as PID 1 reaps zombies and, with -g, signals the whole foreground process group;
# NVIDIA's entrypoint still runs (driver and CUDA compatibility checks) and execs the
# command. `triton-llm serve` starts tritonserver and the frontend in their own process
# groups. On SIGTERM the frontend drains (readiness 503, new requests 503 with Retry-After,
# the ones in flight finish), then Triton stops (unloading the models), then whatever is
# left is killed: 30 + 15 + 5 s at most with the defaults. `--host 0.0.0.0` is the
# frontend's address only.
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/opt/nvidia/nvidia_entrypoint.sh"]
CMD ["triton-llm", "serve", "--model-repository", "/models", "--host", "0.0.0.0"]
