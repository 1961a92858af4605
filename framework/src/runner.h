// Runs a study: every cell through the measurement protocols, one JSON line each, a table on stdout.
#pragma once

#include "config.h"

#include <ostream>
#include <string>

namespace attnbench {

struct RunOptions {
  bool force = false;             // rerun cells already in the results file
  std::string save_outputs_dir;   // write each cell's forward/step outputs as safetensors
};

// The LoadOptions that check plugin parameters against the plugins the loader finds.
LoadOptions plugin_aware_options(std::vector<std::string> overrides);

// Returns the process exit status: 0 when every cell is ok or skipped, 1 when any cell failed.
int run_study(const Study& study, const RunOptions& options, std::ostream& out);

// Human-readable list of a study's cells, as --dry-run prints it.
void print_cells(const Study& study, std::ostream& out);

// Keeps the cells whose --dry-run line matches `pattern` (ECMAScript regex, searched); indices keep
// their place in the full study. Throws ConfigError for a bad pattern or when nothing matches.
void filter_cells(Study& study, const std::string& pattern);

// Keeps shard `index` (1-based) of `count`: the cells whose position in the full expansion is
// index - 1 modulo count, so the shards partition the study and do not depend on what ran before.
// Throws ConfigError for an index outside 1..count.
void shard_cells(Study& study, int64_t index, int64_t count);

}  // namespace attnbench
