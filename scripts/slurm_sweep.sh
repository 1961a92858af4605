#!/usr/bin/env bash
# Runs a study as a Slurm job array, one shard of its cells per array task, then merges the shards.
#
#   scripts/slurm_sweep.sh configs/bench_cuda.yaml 8 [sbatch options...]
#
# Each task runs `runner STUDY --shard I/N` into results/<study>.shard<I>.jsonl (a task that is
# requeued resumes: cells already in its file are skipped); a last job, after all tasks, merges them
# into results/<study>.jsonl with scripts/merge_results.py. Extra arguments go to both sbatch calls
# (e.g. --partition=gpu --gres=gpu:1 --time=02:00:00).
set -euo pipefail
study=${1:?usage: slurm_sweep.sh STUDY.yaml SHARDS [sbatch options...]}
shards=${2:?usage: slurm_sweep.sh STUDY.yaml SHARDS [sbatch options...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
name=$(basename "$study" .yaml)
mkdir -p "$root/results/slurm"
array_job=$(sbatch --parsable --job-name="attnbench-$name" --array=1-"$shards" \
  --output="$root/results/slurm/$name.%a.log" "$@" --wrap \
  "cd '$root' && ./build/runner '$study' --shard \${SLURM_ARRAY_TASK_ID}/$shards --results results/$name.shard\${SLURM_ARRAY_TASK_ID}.jsonl")
sbatch --parsable --job-name="attnbench-$name-merge" --dependency=afterany:"$array_job" \
  --output="$root/results/slurm/$name.merge.log" "$@" --wrap \
  "cd '$root' && python3 scripts/merge_results.py results/$name.jsonl results/$name.shard*.jsonl"
echo "slurm_sweep: job array $array_job ($shards shards) and a merge job after it"
