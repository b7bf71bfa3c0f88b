#!/usr/bin/env bash
# `make scale-test`: tensor and pipeline parallel through Triton on vLLM's CPU build (greedy parity
# with vLLM offline through Triton and the OpenAI frontend), a worker killed, a SIGTERM, and a
# two-node Ray cluster on this host (tests/integration/test_scale.py; docs/scaling.md).
# Ray is this tier's alone: installed into .venv here when missing (it adds ray and msgpack, and
# changes nothing else there), so that `make setup` stays as fast as before.
set -euo pipefail
cd "$(dirname "$0")/.."
RAY_VERSION=2.60.0
start=$SECONDS
if ! .venv/bin/python -c "import ray, sys; sys.exit(ray.__version__ != '$RAY_VERSION')" 2>/dev/null; then
  echo "==> installing ray==$RAY_VERSION into .venv (this tier only)"
  .venv/bin/python -m pip --disable-pip-version-check -q install "ray==$RAY_VERSION" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
set +e
# One Triton stack at a time on this machine.
flock /tmp/triton-it.lock .venv/bin/python -m pytest -m scale -p no:cacheprovider -s tests/integration/test_scale.py "$@"
rc=$?
echo "==> scale-test $([[ $rc == 0 ]] && echo passed || echo FAILED) in $((SECONDS - start)) s"
exit $rc
