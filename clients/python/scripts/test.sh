#!/usr/bin/env bash
# The Python package's test run, exactly as CI runs it (.ci/run calls this script):
#   1. builds the `quorate` binary the cluster tests start (`cargo build --bin quorate`, debug);
#   2. makes a virtual environment under the cargo target dir (target/py-venv) and installs the package with its
#      test extras from PyPI (`pip install ./clients/python[test]`);
#   3. type-checks the package (mypy --strict) and runs pytest: unit tests, fake-node tests, and integration tests
#      against real three-node clusters on 127.0.0.1 started from that binary.
# Env: QUORATE_BIN (a binary to test instead of building one), QUORATE_PY_VENV (where the venv goes),
#      PYTHON (the interpreter for the venv; default python3, 3.10 or later). Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac

if [ -z "${QUORATE_BIN:-}" ]; then
  cargo build --bin quorate
  export QUORATE_BIN="$target/debug/quorate"
fi
venv=${QUORATE_PY_VENV:-$target/py-venv}
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade "$repo/clients/python[test]"

cd "$repo/clients/python"
"$venv/bin/python" -m mypy
"$venv/bin/python" -m pytest "$@"
