#!/usr/bin/env bash
# The checker, the consistency gates and cell isolation on a GPU machine without a package registry
# (docs/gpu.md), in one go: builds the CUDA path with the tests, runs the checker's, gates' and
# isolation's tests, puts mha, reservoir and the windowed fixture through check-plugin on the GPU, and
# runs a study with run.isolate on the GPU (fp32 and AMP float16, a crashing cell among them) whose
# consistency errors against the default tolerances it prints as a short table last.
# Everything goes to $OUT (default ./out). Needs .gpu-deps/ from scripts/gpu_deps.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

if ! scripts/build.sh --cuda -DATTNBENCH_TESTS=ON > "$out/build.log" 2>&1; then
  grep -E "error|Error" -A3 "$out/build.log" | head -60
  exit 1
fi
(cd build-cuda && ctest --output-on-failure --timeout 600 -R "Checker|Isolate|StudyGates|StudyIsolation|catalogue" \
  > "$out/ctest.log" 2>&1)
tests=$(grep -E "tests passed|tests failed" "$out/ctest.log" | tail -1)

fixtures=build-cuda/tests/fixtures
checks=()
for spec in mha reservoir "$fixtures/attnbench_fixture_window.so" "$fixtures/attnbench_fixture_window_wrap.so"; do
  name=$(basename "$spec" .so)
  start=$(date +%s)
  ./build-cuda/runner check-plugin "$spec" --device cuda > "$out/check_$name.txt" 2>&1
  checks+=("| $name | $(tail -1 "$out/check_$name.txt" | sed 's/.*: //') | $(( $(date +%s) - start )) s |")
done

# Isolated cells on the GPU: the runner must leave CUDA to its children (a forked child cannot use a
# CUDA context its parent made). The crash cell must end as an error naming SIGSEGV, the others run.
cat > "$out/gates_cuda.yaml" <<EOF
name: gates_cuda
data: {embedder: synthetic, params: {embed_dim: 768}, samples: 2, seq_len: 2048}
attention:
  - {name: MHA, plugin: mha, params: {heads: 4}}
  - {name: RA, plugin: reservoir, params: {heads: 4, res_size: 256}}
  - {name: window, plugin: $PWD/$fixtures/attnbench_fixture_window.so, params: {heads: 4, window: 64}}
  - {name: crash, plugin: $PWD/$fixtures/attnbench_fixture.so, params: {fault: crash}}
run: {device: cuda, batch: 2, isolate: true, modes: [full, step, consistency, rollout]}
measure: {warmup: 1, min_runs: 2, min_time_ms: 0}
matrix:
  run.amp: [false, true]
EOF
./build-cuda/runner "$out/gates_cuda.yaml" --results "$out/gates_cuda.jsonl" --force > "$out/gates_cuda.txt" 2>&1
echo "gates study exit status: $? (1 expected: the crash cell)" | tee -a "$out/gates_cuda.txt"

echo
echo "tests (checker, gates, isolation, catalogue): $tests"
echo
echo "| check-plugin --device cuda | result | time |"
echo "|---|---|---|"
printf '%s\n' "${checks[@]}"
echo
python3 - "$out/gates_cuda.jsonl" <<'EOF'
import json, sys
print("| cell | dtype | status | step~full | prefix~step | batch alone | closed loop | tolerance | message |")
print("|---|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    c = r.get("metrics", {}).get("consistency", {})
    loop = r.get("metrics", {}).get("rollout", {}).get("step_vs_prefix", {})
    rel = lambda e: f"{e['rel_rms']:.2e}" if e else "-"
    print(f"| {r['attention']['name']} amp={r['params']['run']['amp']} | {r.get('dtype', '-')} | {r['status']} | "
          f"{rel(c.get('step_vs_full'))} | {rel(c.get('prefix_vs_step'))} | {rel(c.get('batch_vs_alone'))} | "
          f"{rel(loop)} | {c.get('tolerance', '-')} | {r.get('message', '')[:90]} |")
EOF
