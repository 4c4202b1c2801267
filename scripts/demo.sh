#!/usr/bin/env bash
# demo.sh — install what is missing, build the default preset and run the
# demo: the Scheme-like interpreter of examples/lisp on
# examples/lisp/programs/showcase.scm, which prints its results and the
# collector's statistics. Arguments are passed to the interpreter after the
# script (they become *args*).
set -euo pipefail

# The program the demo runs (a target of the default preset's build).
DEMO_TARGET=mulch-lisp
DEMO_BIN=build/default/examples/lisp/${DEMO_TARGET}
DEMO_SCRIPT=examples/lisp/programs/showcase.scm
# The showcase writes two small files (ports): keep them in the build tree.
DEMO_DIR=build/default/examples/lisp/demo

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --target "${DEMO_TARGET}"
echo
mkdir -p "${DEMO_DIR}"
root=$(pwd)
cd "${DEMO_DIR}"
exec "${root}/${DEMO_BIN}" "${root}/${DEMO_SCRIPT}" "$@"
