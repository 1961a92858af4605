#!/usr/bin/env bash
# On a machine with several GPUs: builds the runner, runs configs/multi_gpu.yaml on GPU 0 alone and then
# over every GPU (--devices), and prints both wall times and the per-cell medians side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
scripts/build.sh --cuda -DATTNBENCH_TESTS=OFF > "$out/build.log" 2>&1
gpus=$(nvidia-smi -L | wc -l)
devices=$(seq -s, 0 $((gpus - 1)))
nvidia-smi -L
t0=$(date +%s.%N)
CUDA_VISIBLE_DEVICES=0 ./build-cuda/runner configs/multi_gpu.yaml --results "$out/one_gpu.jsonl" --force > "$out/one_gpu.txt" 2>&1
t1=$(date +%s.%N)
./build-cuda/runner configs/multi_gpu.yaml --devices "$devices" --results "$out/all_gpus.jsonl" --force > "$out/all_gpus.txt" 2>&1
t2=$(date +%s.%N)
python3 - "$out/one_gpu.jsonl" "$out/all_gpus.jsonl" "$t0" "$t1" "$t2" "$gpus" <<'PY'
import json, sys
one, many = ({json.loads(l)["hash"]: json.loads(l) for l in open(p)} for p in sys.argv[1:3])
t0, t1, t2, n = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print(f"cells: {len(one)} on 1 GPU, {len(many)} over {n} GPUs (every cell once: {sorted(one) == sorted(many)})")
print(f"wall: 1 GPU {t1 - t0:.1f} s, {n} GPUs {t2 - t1:.1f} s, ratio {(t2 - t1) / (t1 - t0):.2f} (ideal {1 / n:.2f})")
for h, r in sorted(one.items(), key=lambda kv: kv[1]["cell"]):
    a, b = r["metrics"], many[h]["metrics"]
    print(f"{r['attention']['name']:4} seed {r['params']['run']['seed']}: full {a['full']['time_ms']['median']:.3f} vs "
          f"{b['full']['time_ms']['median']:.3f} ms, 256 steps {a['step']['time_ms']['median']:.2f} vs {b['step']['time_ms']['median']:.2f} ms")
PY
