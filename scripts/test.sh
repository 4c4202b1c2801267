#!/usr/bin/env bash
# test.sh — install what is missing, then configure, build and run every
# test of the default preset (Release, warnings as errors):
#   cmake --workflow --preset default
# Sanitizer runs: `cmake --workflow --preset asan` / `--preset tsan` (.ci/run).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake --workflow --preset default
