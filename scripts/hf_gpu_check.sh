#!/usr/bin/env bash
# On the GPU machine (docs/gpu.md; needs .gpu-deps/ from scripts/gpu_deps.sh and python3 with torch and
# transformers), in one go for the hf embedder, within the device's 10 minutes: build, the text tests
# (scripts/gpu_check.sh without its benchmark; the whole suite is gpu_check.sh's own run); parity of every family with the transformers there (scripts/hf_parity.py); base-size
# checkpoints with random weights of each family where models/NAME is missing
# (scripts/hf_checkpoint.py --random); configs/embed_bench.yaml on the GPU in fp32 and with AMP. Results
# go to $OUT (default ./out); a table of tokens per second is printed last.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p "${OUT:-out}"
out=$(cd "${OUT:-out}" && pwd)
ATTNBENCH_SKIP_BENCH=1 ATTNBENCH_CTEST_ARGS="-R Hf|Bert|WordPiece|Corpus" scripts/gpu_check.sh
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
parity=0
python3 scripts/hf_parity.py --dump build-cuda/tests/hf_dump --out /tmp/hf_parity > "$out/hf_parity.txt" 2>&1 || parity=$?
for m in bert-base-uncased distilbert-base-uncased roberta-base xlm-roberta-base gpt2; do
  [[ -d models/$m ]] || python3 scripts/hf_checkpoint.py "$m" "models/$m" --random >> "$out/checkpoints.txt" 2>&1
done
./build-cuda/runner configs/embed_bench.yaml --set run.device=cuda --set 'matrix.run.amp=[false, true]' \
  --results "$out/embed_bench_cuda.jsonl" --force > "$out/embed_bench_cuda.txt" 2>&1 || true
sed -n '/^| check/,$p' "$out/hf_parity.txt" | tail -40
echo "hf_parity.py exit status: $parity (0: every check ok)"
python3 - "$out/embed_bench_cuda.jsonl" <<'EOF'
import json, os, sys
print("| model | amp | tokens/s | status |\n|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    model = os.path.basename(r["params"]["data"]["params"]["model"])
    rate = r.get("embedder", {}).get("details", {}).get("model_tokens_per_s")
    print(f"| {model} | {r['params']['run']['amp']} | {f'{rate:,.0f}' if rate else ''} | {r['status']} {r.get('message', '')[:60]} |")
EOF
