#!/usr/bin/env bash
# Runs a benchmark study (default configs/bench_cpu.yaml) from scratch and prints its rows beside the
# targets of docs/reference.md. Usage: scripts/bench.sh [STUDY.yaml] [runner options...]
set -euo pipefail
cd "$(dirname "$0")/.."
study=${1:-configs/bench_cpu.yaml}
shift || true
results=${ATTNBENCH_BENCH_RESULTS:-results/$(basename "$study" .yaml).jsonl}
./build/runner "$study" --results "$results" --force "$@"
python3 scripts/bench_table.py "$results"
