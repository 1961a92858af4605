#!/usr/bin/env bash
# One round on a GPU machine without a package registry (docs/gpu.md), within a device call's 10
# minutes: build the CUDA path with the tests, run the tests that touch CUDA, the GPU quickstart, the
# long-context cells the memory issue names (L = 4096 at batch 16, L = 131072 streamed), and the L = 256
# fp32 rows of configs/bench_cuda.yaml. Results and logs go to $OUT (default ./out); a short table last.
# Needs .gpu-deps/ (scripts/gpu_deps.sh) and models/all-MiniLM-L6-v2 (a half-precision copy fits a
# transfer limit: scripts/half_checkpoint.py).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
step() { local name=$1 limit=$2; shift 2; local t0=$(date +%s); timeout "$limit" "$@" > "$out/$name.txt" 2>&1; local rc=$?
         echo "$name: exit $rc, $(( $(date +%s) - t0 )) s" | tee -a "$out/steps.txt"; }
step build 420 scripts/build.sh --cuda -DATTNBENCH_TESTS=ON
(cd build-cuda && step ctest 240 ctest -j 8 --timeout 200 -R "Cuda|Mha|Reservoir|Memory|Quality|Runner|Loader|Checker|output")
grep -E "tests passed|\*\*\*Failed|Timeout" "$out/ctest.txt" | head -12
step quickstart 150 scripts/quickstart.sh
step long_context 200 ./build-cuda/runner configs/long_context_cuda.yaml --results "$out/long_context_cuda.jsonl" --force \
  --filter 'seq_len=4096 batch=16|seq_len=131072'
step bench 150 ./build-cuda/runner configs/bench_cuda.yaml --results "$out/bench_cuda.jsonl" --force --filter 'seq_len=256 amp=false'
tail -6 "$out/quickstart.txt"
python3 - "$out" <<'PY'
import json, os, sys
for name in ("long_context_cuda", "bench_cuda"):
    path = os.path.join(sys.argv[1], name + ".jsonl")
    if not os.path.exists(path):
        continue
    for line in open(path):
        r = json.loads(line)
        m = r.get("metrics", {})
        cells = [r["attention"]["name"], r["params"]["data"]["seq_len"], r["params"]["run"]["batch"], r["status"]]
        for mode in ("full", "step"):
            if mode in m:
                cells.append(f"{mode} {m[mode]['time_ms']['median']:.3f} ms, {m[mode].get('per_token_us', {}).get('median', 0):.2f} us/token, peak {m[mode]['peak_bytes'] / 2**20:.1f} MB")
        if "peak_cuda_bytes" in m:
            cells.append(f"cell peak {m['peak_cuda_bytes'] / 2**20:.0f} MB")
        print(name, *cells, r.get("message", "")[:100], sep=" | ")
PY
