#!/usr/bin/env bash
# Configures and builds attnbench (Release, Ninja, ccache when present). Extra arguments go to CMake,
# e.g. scripts/build.sh -DATTNBENCH_TESTS=OFF
#   (default)  the CPU build into build/, against the libtorch CMake finds (Debian's libtorch-dev)
#   --cuda     the CUDA build into build-cuda/, against python3's torch (a CUDA build of PyTorch), for
#              the GPUs of this machine (CUDA architectures "native")
# ATTNBENCH_PREFIX_PATH adds prefixes to CMAKE_PREFIX_PATH (e.g. Debian packages unpacked elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
args=()
prefixes=${ATTNBENCH_PREFIX_PATH:-}
if [[ ${1:-} == --cuda ]]; then
  shift
  torch=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  build=build-cuda
  prefixes="$torch/share/cmake${prefixes:+;$prefixes}"
  # Named outright: TorchConfig would otherwise take a system libtorch (Debian's) before this one.
  args+=(-DATTNBENCH_CUDA=ON -DTORCH_LIBRARY="$torch/lib/libtorch.so" -Dc10_LIBRARY="$torch/lib/libc10.so")
fi
if [[ -n $prefixes ]]; then args+=("-DCMAKE_PREFIX_PATH=$prefixes"); fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${args[@]}" "$@" > "$build.log" 2>&1 || { cat "$build.log"; exit 1; }
cmake --build "$build" --parallel "$(nproc)"
