// Choosing cells of a study to run: by pattern (--filter) or by shard (--shard, job arrays).
#pragma once

#include "study/study.h"

#include <string>

namespace attnbench {

// One cell as --dry-run lists it and --filter matches it: "   3  <hash>  <label>  axis=value ...".
std::string cell_line(const Cell& cell);
// " axis=value ..." with each axis by its last path component, for the console.
std::string axes_text(const Cell& cell);

// Keeps the cells whose cell_line matches `pattern` (an RE2 regular expression, searched); indices keep
// their place in the full study. Throws ConfigError for a bad pattern or when nothing matches.
void filter_cells(Study& study, const std::string& pattern);

// Keeps shard `index` (1-based) of `count`: the cells whose position among study.cells (the full
// expansion, or what --filter kept of it) is index - 1 modulo count, so the shards partition the
// selected cells and do not depend on what ran before. Shards compose: shard k (1-based) of n of shard
// i of N is shard i + N * (k - 1) of N * n. Throws ConfigError for an index outside 1..count.
void shard_cells(Study& study, int64_t index, int64_t count);

}  // namespace attnbench
