#!/usr/bin/env bash
# On the GPU machine, in one go: build against its CUDA torch, run every test (the CUDA ones included),
# run configs/bench_cuda.yaml, print a short table. Results go to $OUT (default ./out).
# Needs the Debian packages that tools/gpu-deps.sh put in .gpu-deps/ (that machine has no registry).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p "${OUT:-out}" /tmp/deps
out=$(cd "${OUT:-out}" && pwd)
for f in .gpu-deps/*.deb; do dpkg -x "$f" /tmp/deps; done
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_PREFIX_PATH="$torch_prefix;/tmp/deps/usr" > "$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
cmake --build build-gpu --parallel "$(nproc)" > "$out/build.log" 2>&1 || { grep -E "error|Error" -A3 "$out/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
(cd build-gpu && ctest --output-on-failure --parallel 4 --timeout 600 > "$out/ctest.log" 2>&1) || true
grep -E "tests passed|Failed|\*\*\*" "$out/ctest.log" | tail -15 || true
if [[ "${ATTNBENCH_SKIP_BENCH:-0}" != 1 ]]; then
  # ATTNBENCH_BENCH_ARGS: extra runner options, e.g. --filter 'seq_len=256 amp=false'
  ./build-gpu/runner configs/bench_cuda.yaml --results "$out/bench_cuda.jsonl" --force ${ATTNBENCH_BENCH_ARGS:-} \
    > "$out/bench_cuda.txt" 2>&1 || true
  tail -30 "$out/bench_cuda.txt"
  python3 scripts/bench_table.py "$out/bench_cuda.jsonl" | tee "$out/bench_cuda.md"
fi
