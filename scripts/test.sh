#!/usr/bin/env bash
# Builds attnbench with its tests on a fresh Debian machine and runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh -DATTNBENCH_TESTS=ON
cd build
ctest --output-on-failure --parallel "$(nproc)" --timeout 600
