#!/usr/bin/env bash
# The main job on a fresh Debian machine: install what is missing, build, run configs/quickstart.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch_model.sh
scripts/build.sh -DATTNBENCH_TESTS=OFF
./build/runner configs/quickstart.yaml "$@"
