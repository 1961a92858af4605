#!/usr/bin/env bash
# Runs a study on a Slurm cluster: a job array with one shard of the cells per task, then a merge job
# that folds the shards into one results file and names every cell that is missing or failed.
#
#   scripts/slurm_sweep.sh STUDY.yaml SHARDS [runner options] [sweep options] [sbatch options...]
#     runner options, given to every task:  --set PATH=VALUE (repeatable), --filter REGEX, --force
#     sweep options:   --runner PATH   the runner to run (default build/runner; build-cuda/runner for CUDA)
#                      --results FILE  the merged results (default results/<study file name>.jsonl)
#     anything else goes to sbatch for the array (e.g. --partition=gpu --gres=gpu:1 --time=02:00:00) and,
#     less its GPU requests, for the merge job
#   scripts/slurm_sweep.sh --merge RESULTS.jsonl   merge the shards by hand (what the merge job runs)
#
# Before submitting, the study is loaded with the runner (`--dry-run`): a study that does not load is
# refused with the runner's own message. Task I runs `runner STUDY --shard I/SHARDS` into
# <results>.shard<I>of<SHARDS>.jsonl, over every GPU it was given (--devices) when it has several; a
# requeued task resumes from its file. The merge job runs after every task has ended, however it ended.
# docs/cluster.md has the whole story.
set -euo pipefail

usage() {
  echo "usage:" >&2
  sed -n '4,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "slurm_sweep: $*" >&2
  exit 2
}
absolute() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }

# What a task runs: its shard of the cells, over its GPUs when it has several.
run_task() {
  local shards=$1 runner=$2 study=$3 shard_prefix=$4
  shift 4
  local index=${SLURM_ARRAY_TASK_ID:?slurm_sweep: --task runs inside a Slurm array task}
  local results="$shard_prefix$index"of"$shards.jsonl" devices="" gpus=${SLURM_GPUS_ON_NODE:-0}
  # The GPUs this task may use: CUDA_VISIBLE_DEVICES as Slurm set it (ordinals, in the numbering this
  # task sees), else SLURM_GPUS_ON_NODE of them.
  if [[ -n ${CUDA_VISIBLE_DEVICES+set} ]]; then
    devices=$CUDA_VISIBLE_DEVICES
  elif [[ $gpus =~ ^[0-9]+$ ]] && ((gpus > 1)); then
    devices=$(seq -s, 0 $((gpus - 1)))
  fi
  local device_args=()
  if [[ $devices == *,* ]]; then
    if [[ $devices =~ ^[0-9]+(,[0-9]+)+$ ]]; then
      device_args=(--devices "$devices")
    else
      echo "slurm_sweep: warning: CUDA_VISIBLE_DEVICES='$devices' is not a list of ordinals; one runner uses them all"
    fi
  fi
  echo "slurm_sweep: task $index of $shards on $(hostname) (job ${SLURM_JOB_ID:-?}, restart ${SLURM_RESTART_COUNT:-0}," \
    "GPUs '${devices:-none}') -> $results"
  exec "$runner" "$study" "$@" --shard "$index/$shards" --results "$results" "${device_args[@]}"
}

# Folds every shard file of RESULTS into it and checks the cells the sweep listed when it was submitted.
merge() {
  local root=$1 results=$2
  local stem=${results%.jsonl} dir base
  dir=$(dirname "$results")
  base=$(basename "$stem")
  local cells="$dir/slurm/$base.cells" shard_files=() file
  for file in "$stem".shard*of*.jsonl; do
    [[ $file =~ \.shard[0-9]+of[0-9]+\.jsonl$ && -f $file ]] && shard_files+=("$file")
  done
  local expect=()
  if [[ -f $cells ]]; then
    expect=(--expect "$cells")
  else
    echo "slurm_sweep: $cells is missing, so nothing says which cells to expect; merging only"
  fi
  if ((${#shard_files[@]} == 0)) && [[ ! -f $cells ]]; then die "no shard files $stem.shard*of*.jsonl to merge"; fi
  echo "slurm_sweep: merging ${#shard_files[@]} shard files into $results"
  exec python3 "$root/scripts/merge_results.py" "${expect[@]}" "$results" "${shard_files[@]}"
}

# The merge job needs no GPU: drop the GPU requests from the array's sbatch options.
without_gpus() {
  local skip_next=0 arg
  for arg in "$@"; do
    if ((skip_next)); then
      skip_next=0
      continue
    fi
    case $arg in
      --gres | --gpus | -G | --gpus-per-node | --gpus-per-task | --gpus-per-socket | --cpus-per-gpu | --mem-per-gpu | --gpu-bind | --gpu-freq)
        skip_next=1 ;;
      --gres=* | --gpus=* | -G?* | --gpus-per-node=* | --gpus-per-task=* | --gpus-per-socket=* | --cpus-per-gpu=* | \
        --mem-per-gpu=* | --gpu-bind=* | --gpu-freq=*) ;;
      *) printf '%s\0' "$arg" ;;
    esac
  done
}

case ${1:-} in
  --task)
    shift
    cd "${1:?}" && shift  # the submitting directory, where the study's relative paths mean what they meant
    run_task "$@" ;;
  --merge-job)
    shift
    merge "$@" ;;
  --merge)
    [[ $# == 2 ]] || usage
    merge "$(cd "$(dirname "$0")/.." && pwd)" "$(absolute "$2")" ;;
  '' | -h | --help) usage ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
study=$1
shards=${2:-}
shift 2 || usage
[[ -f $study ]] || die "$study: no such study file"
[[ $shards =~ ^[1-9][0-9]*$ ]] || die "SHARDS must be a positive number of array tasks, got '$shards'"
study=$(absolute "$study")
runner="$root/build/runner"
results="$PWD/results/$(basename "$study" .yaml).jsonl"
runner_opts=() sbatch_opts=()
while (($#)); do
  case $1 in
    --set | --filter)
      (($# >= 2)) || die "$1 needs a value"
      runner_opts+=("$1" "$2")
      shift 2 ;;
    --set=* | --filter=*) runner_opts+=("${1%%=*}" "${1#*=}") && shift ;;
    --force) runner_opts+=("$1") && shift ;;
    --runner | --results)
      (($# >= 2)) || die "$1 needs a value"
      if [[ $1 == --runner ]]; then runner=$(absolute "$2"); else results=$(absolute "$2"); fi
      shift 2 ;;
    --runner=*) runner=$(absolute "${1#*=}") && shift ;;
    --results=*) results=$(absolute "${1#*=}") && shift ;;
    *) sbatch_opts+=("$1") && shift ;;
  esac
done
[[ $results == *.jsonl ]] || die "--results $results: a results file ends in .jsonl"
[[ -x $runner ]] || die "$runner: no runner there; build attnbench first (scripts/build.sh) or give --runner PATH"

# Load the study as every task will, and keep the cells it lists: the merge checks them off.
stem=${results%.jsonl}
name=$(basename "$stem")
logs="$(dirname "$results")/slurm"
mkdir -p "$logs"
cells="$logs/$name.cells"
listing=$(mktemp "$cells.XXXXXX")
trap 'rm -f "$listing"' EXIT
if ! "$runner" "$study" "${runner_opts[@]}" --dry-run > "$listing"; then
  die "the study does not load (the runner's message is above); nothing was submitted"
fi
count=$(tail -n 1 "$listing" | sed -n 's/^\([0-9][0-9]*\) cells$/\1/p')
[[ -n $count ]] || die "the runner's --dry-run did not end with a cell count; nothing was submitted"
((shards <= count)) || die "$shards array tasks for $count cells: some would have nothing to do; use at most $count"
command -v sbatch > /dev/null || die "sbatch not found: run this where Slurm's commands are (a login node)"

# Two sweeps into one results file would write the same shard files.
queued=$(squeue --noheader --user="$(id -un)" --name="attnbench-$name,attnbench-$name-merge" --format=%i 2> /dev/null | tr '\n' ' ' || true)
[[ -z ${queued// /} ]] || die "a sweep into $name is still queued or running (jobs $queued): wait for it or scancel it, or give --results another file"
mv "$listing" "$cells"

array_job=$(sbatch --parsable --requeue "${sbatch_opts[@]}" --job-name="attnbench-$name" --array=1-"$shards" \
  --open-mode=append --output="$logs/$name.%A_%a.log" \
  "$root/scripts/slurm_sweep.sh" --task "$PWD" "$shards" "$runner" "$study" "$stem.shard" "${runner_opts[@]}")
array_job=${array_job%%;*}
mapfile -d '' merge_opts < <(without_gpus "${sbatch_opts[@]}")
if ! merge_job=$(sbatch --parsable "${merge_opts[@]}" --job-name="attnbench-$name-merge" --dependency=afterany:"$array_job" \
  --open-mode=append --output="$logs/$name.merge.%j.log" \
  "$root/scripts/slurm_sweep.sh" --merge-job "$root" "$results"); then
  echo "slurm_sweep: job array $array_job is submitted but its merge job is not (sbatch's message is above);" \
    "when the array is done: $root/scripts/slurm_sweep.sh --merge $results" >&2
  exit 1
fi
merge_job=${merge_job%%;*}

per_task=$((count / shards))
((count % shards == 0)) || per_task="$per_task or $((per_task + 1))"
cat << EOF
slurm_sweep: $count cells of $study in $shards array tasks ($per_task cells each)
  array job $array_job: $stem.shard<I>of$shards.jsonl, logs $logs/$name.${array_job}_<I>.log
  merge job $merge_job (after every task, however it ends): $results, log $logs/$name.merge.$merge_job.log
watch:          squeue --jobs=$array_job,$merge_job
merge by hand:  $root/scripts/slurm_sweep.sh --merge $results
EOF
