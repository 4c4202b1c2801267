#!/usr/bin/env bash
# demo.sh — install what is missing, build the default preset and run the
# demo program. Arguments are passed to the demo.
set -euo pipefail

# The program the demo runs (a target of the default preset's build).
DEMO_TARGET=pool_demo
DEMO_BIN=build/default/examples/${DEMO_TARGET}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --target "${DEMO_TARGET}"
echo
exec "${DEMO_BIN}" "$@"
