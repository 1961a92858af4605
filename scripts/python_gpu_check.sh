#!/usr/bin/env bash
# The python plugin on a GPU machine without a package registry (docs/gpu.md), in one go: builds the
# CUDA path against python3's torch with the plugin required, runs its tests, puts the examples through
# check-plugin on the GPU, measures configs/python_bridge.yaml on the GPU, and prints a short table last.
# Everything goes to $OUT (default ./out). Needs .gpu-deps/ from scripts/gpu_deps.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh

# What the plugin needs from this Python: its headers and a shared libpython.
python3 - > "$out/python.txt" 2>&1 <<'EOF'
import os, sys, sysconfig, torch
inc, libdir, lib = sysconfig.get_paths()["include"], sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
print(f"python {sys.version.split()[0]} at {sys.executable}; torch {torch.__version__} at {os.path.dirname(torch.__file__)}")
print(f"Python.h: {os.path.exists(os.path.join(inc, 'Python.h'))} ({inc}); libpython: {lib} in {libdir}, "
      f"exists {os.path.exists(os.path.join(libdir or '', lib or ''))}, shared {sysconfig.get_config_var('Py_ENABLE_SHARED')}")
EOF
cat "$out/python.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

if ! scripts/build.sh --cuda -DATTNBENCH_TESTS=ON -DATTNBENCH_PYTHON_LAYERS=ON > "$out/build.log" 2>&1; then
  cp build-cuda.log "$out/configure.log" 2>/dev/null
  grep -hE "python layers|ATTNBENCH_PYTHON_LAYERS|error|Error" -A3 "$out/configure.log" "$out/build.log" | head -40
  exit 1
fi
cp build-cuda.log "$out/configure.log"
grep "python layers" "$out/configure.log"
(cd build-cuda && ctest --output-on-failure --timeout 600 -R "python|PythonLayers|catalogue" > "$out/ctest.log" 2>&1)
tests=$(grep -E "tests passed|tests failed" "$out/ctest.log" | tail -1)

rows=()
for example in linear_attention:LinearAttention retention:Retention selective_ssm:SelectiveSSM mha:MultiheadAttention identity:Identity; do
  file=${example%%:*} class=${example##*:}
  ./build-cuda/runner check-plugin python --device cuda --embed-dim 64 --set "module=examples/python/$file.py" \
    --set "class=$class" > "$out/check_$file.txt" 2>&1
  rows+=("| $file | $(tail -1 "$out/check_$file.txt" | sed 's/.*: //') |")
done

python3 scripts/python_bridge.py --runner build-cuda/runner --device cuda --results "$out/python_bridge_cuda.jsonl" \
  > "$out/python_bridge_cuda.txt" 2>&1

echo
echo "tests (python, catalogue): $tests"
echo
echo "| example | check-plugin on cuda |"
echo "|---|---|"
printf '%s\n' "${rows[@]}"
echo
sed -n '/^| cell/,$p' "$out/python_bridge_cuda.txt"
