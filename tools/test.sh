#!/usr/bin/env bash
# `make test`: the tests on the session's stack (marked `stack` by tests/integration/conftest.py)
# in one pytest process, and the rest (unit tests; modules with servers of their own) in a second
# one beside it, so that the 2 cores are busy while the stack loads and serves. Arguments go to
# both (a selection that leaves one side empty is fine); the second side's output is printed when
# it ends. Exit status: 0 when both pass.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
log=$(mktemp "${TMPDIR:-/tmp}/triton-llm-tests.XXXXXX")
$PY -m pytest -m "not bench and not scale and not lifecycle and not lora and not stack" -p no:cacheprovider "$@" >"$log" 2>&1 &
rest=$!
trap 'kill $rest 2>/dev/null; rm -f "$log"' EXIT
echo "==> the tests on the session's stack here; the others in a second process (pid $rest), printed when done"
# --durations: where the critical path goes (the suite-time budget, README "Tests").
$PY -m pytest -m "not bench and not scale and not lifecycle and not lora and stack" --durations=25 "$@"
stack_rc=$?
wait $rest
rest_rc=$?
echo "==> the unit tests and the modules with servers of their own:"
cat "$log"
# 5: nothing selected on that side
ok() { [[ $1 -eq 0 || $1 -eq 5 ]]; }
ok $stack_rc && ok $rest_rc
