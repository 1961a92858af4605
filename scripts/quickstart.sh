#!/usr/bin/env bash
# The main job on a fresh Debian machine: install what is missing, build, run configs/quickstart.yaml.
# On a machine with an NVIDIA GPU and a CUDA build of PyTorch (python3 -c 'import torch' finds CUDA),
# it builds the CUDA path for the GPUs present and runs the quickstart on the GPU; otherwise the CPU
# build. Extra arguments go to the runner.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch_model.sh
if nvidia-smi -L > /dev/null 2>&1 &&
   python3 -c 'import sys, torch; sys.exit(0 if torch.version.cuda and torch.cuda.is_available() else 1)' 2> /dev/null; then
  echo "quickstart: $(nvidia-smi -L | head -1); building the CUDA path against $(python3 -c 'import torch; print("torch", torch.__version__)')"
  scripts/build.sh --cuda -DATTNBENCH_TESTS=OFF
  ./build-cuda/runner configs/quickstart.yaml --set run.device=cuda "$@"
else
  scripts/build.sh -DATTNBENCH_TESTS=OFF
  ./build/runner configs/quickstart.yaml "$@"
fi
