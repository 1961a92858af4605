#!/usr/bin/env bash
# Configures and builds attnbench into build/ (Release, Ninja, ccache when present).
# Extra arguments go to CMake, e.g. scripts/build.sh -DATTNBENCH_TESTS=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build --parallel "$(nproc)"
