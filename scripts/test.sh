#!/usr/bin/env bash
# Builds attnbench with its tests on a fresh Debian machine and runs them all: the test suite; a short
# libFuzzer run of every parser (regression inputs first); the suite again under AddressSanitizer and
# UndefinedBehaviorSanitizer. ATTNBENCH_QUICK=1 stops after the first pass; ATTNBENCH_FUZZ_RUNS sets
# each fuzzer's number of inputs (default 2000, seed 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
scripts/build.sh -DATTNBENCH_TESTS=ON
(cd build && ctest --output-on-failure --parallel "$(nproc)" --timeout 600)
if [[ "${ATTNBENCH_QUICK:-0}" == 1 ]]; then exit 0; fi

echo "== fuzzing (libFuzzer, clang)"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 -DATTNBENCH_FUZZ=ON \
  > build-fuzz.log 2>&1 || { cat build-fuzz.log; exit 1; }
cmake --build build-fuzz --target fuzz_all --parallel "$(nproc)" >> build-fuzz.log 2>&1 || { tail -50 build-fuzz.log; exit 1; }
export ASAN_OPTIONS=detect_leaks=0  # libtorch and the never-unloaded plugins hold memory until exit on purpose
declare -A seeds=([study]="configs tests/output" [overrides]="" [corpus]="data tests/fixtures/hf" [wikitext]="data"
                  [safetensors]="" [tokenizer]="tests/fixtures/hf")
declare -A dicts=([wikitext]="-dict=tests/fuzz/wikitext.dict")
for target in study overrides corpus wikitext safetensors tokenizer; do
  corpus=$(mktemp -d)
  for dir in ${seeds[$target]}; do cp "$dir"/* "$corpus"/ 2>/dev/null || true; done
  regressions=(tests/fuzz/regressions/"$target"-*)
  if [[ -e ${regressions[0]} ]]; then ./build-fuzz/tests/fuzz/fuzz_"$target" "${regressions[@]}" > /dev/null 2>&1; fi
  # A fixed seed and a small run count keep CI close to deterministic; longer runs explore (see
  # tests/fuzz/CMakeLists.txt) and what they find goes into tests/fuzz/regressions/.
  ./build-fuzz/tests/fuzz/fuzz_"$target" -seed=1 -runs="${ATTNBENCH_FUZZ_RUNS:-2000}" -max_len=4096 ${dicts[$target]:-} \
    -artifact_prefix=build-fuzz/ "$corpus" > build-fuzz/fuzz_"$target".log 2>&1 \
    || { tail -40 build-fuzz/fuzz_"$target".log; exit 1; }
  echo "fuzz_$target: $(grep -E '^Done [0-9]+ runs' build-fuzz/fuzz_"$target".log)"
  rm -rf "$corpus"
done

echo "== the suite under AddressSanitizer and UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTNBENCH_SANITIZE=address,undefined \
  > build-asan.log 2>&1 || { cat build-asan.log; exit 1; }
cmake --build build-asan --parallel "$(nproc)" >> build-asan.log 2>&1 || { tail -50 build-asan.log; exit 1; }
# packaging builds an outside project and scripts runs Python: neither is instrumented code of ours.
cd build-asan
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --parallel "$(nproc)" --timeout 900 -E "packaging|scripts"
