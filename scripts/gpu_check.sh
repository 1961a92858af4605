#!/usr/bin/env bash
# On a GPU machine without a package registry (docs/gpu.md), in one go: build the CUDA path against its
# python3 torch, run every test (the CUDA ones included), run configs/bench_cuda.yaml, print a short
# table. Results go to $OUT (default ./out). Needs .gpu-deps/ from scripts/gpu_deps.sh.
# ATTNBENCH_SKIP_BENCH=1 stops after the tests; ATTNBENCH_BENCH_ARGS adds runner options;
# ATTNBENCH_CTEST_ARGS adds ctest options (e.g. -R to run some tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s)
scripts/build.sh --cuda -DATTNBENCH_TESTS=ON > "$out/build.log" 2>&1 || { grep -E "error|Error" -A3 "$out/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
(cd build-cuda && ctest --output-on-failure --parallel 4 --timeout 600 ${ATTNBENCH_CTEST_ARGS:-} > "$out/ctest.log" 2>&1) || true
grep -E "tests passed|Failed|\*\*\*" "$out/ctest.log" | tail -15 || true
if [[ "${ATTNBENCH_SKIP_BENCH:-0}" != 1 ]]; then
  ./build-cuda/runner configs/bench_cuda.yaml --results "$out/bench_cuda.jsonl" --force ${ATTNBENCH_BENCH_ARGS:-} \
    > "$out/bench_cuda.txt" 2>&1 || true
  tail -30 "$out/bench_cuda.txt"
  python3 scripts/bench_table.py "$out/bench_cuda.jsonl" | tee "$out/bench_cuda.md"
fi
