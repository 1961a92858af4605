#!/usr/bin/env bash
# The runner under strace, for the test that two array tasks never write the same file: inside array
# task I, every process the runner starts records the files it opens, creates, renames or truncates in
# $ATTNBENCH_TRACE_DIR/task<I>/trace.<pid>. Outside a task (slurm_sweep.sh loading the study before it
# submits) it is the plain runner.
set -euo pipefail
if [[ -z ${SLURM_ARRAY_TASK_ID:-} ]]; then exec "$ATTNBENCH_TRACED_RUNNER" "$@"; fi
dir="$ATTNBENCH_TRACE_DIR/task$SLURM_ARRAY_TASK_ID"
mkdir -p "$dir"
exec strace -f -ff -qq --seccomp-bpf -o "$dir/trace" \
  -e trace=open,openat,openat2,creat,rename,renameat,renameat2,truncate,link,linkat,symlink,symlinkat,mknod,mknodat \
  "$ATTNBENCH_TRACED_RUNNER" "$@"
