// One study over several GPUs of one host: a runner process per device, each on a shard of the cells,
// their results merged into the study's file with every cell once.
#pragma once

#include "study/study.h"

#include <ostream>
#include <string>
#include <vector>

namespace attnbench {

// `devices`: CUDA device ordinals ("0", "1", ...); child k runs `runner <child_args> --shard k+1/n
// --results <results>.device<ordinal>.jsonl` with CUDA_VISIBLE_DEVICES=<ordinal>. Cells already in the
// results file are handed to their shard so they are not rerun (unless `force`). Returns 0 when every
// child did, else the first non-zero exit status.
int run_on_devices(const Study& study, const std::vector<std::string>& devices, const std::vector<std::string>& child_args,
                   bool force, std::ostream& out);

}  // namespace attnbench
