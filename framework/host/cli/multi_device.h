// One study over several GPUs of one host: a runner process per device, each on a shard of the cells,
// their results merged into the study's file with every cell once.
#pragma once

#include "study/study.h"

#include <ostream>
#include <string>
#include <vector>

namespace attnbench {

// Which shard of the selected cells `study.cells` is (1 of 1: all of them).
struct ShardSpec {
  int64_t index = 1;
  int64_t count = 1;
};

// `devices`: CUDA device ordinals ("0", "1", ...); `study.cells` is shard `outer` of the cells the
// command line selected. Child k (0-based) runs `runner <child_args> --shard outer.index +
// outer.count * k / outer.count * n --results <results>.device<ordinal>.jsonl` with
// CUDA_VISIBLE_DEVICES=<ordinal>: the k-th of n round-robin parts of study.cells. Cells already in the
// results file are handed to their part so they are not rerun (unless `force`). Returns 0 when every
// child did, else the first non-zero exit status.
int run_on_devices(const Study& study, const std::vector<std::string>& devices, const std::vector<std::string>& child_args,
                   ShardSpec outer, bool force, std::ostream& out);

}  // namespace attnbench
