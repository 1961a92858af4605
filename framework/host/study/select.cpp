#include "study/select.h"

#include <fmt/format.h>

#include <re2/re2.h>

namespace attnbench {

std::string axes_text(const Cell& cell) {
  std::string out;
  for (const auto& [axis, value] : cell.axes) {
    if (axis == "attention") continue;
    auto dot = axis.rfind('.');
    out += fmt::format(" {}={}", dot == std::string::npos ? axis : axis.substr(dot + 1), value);
  }
  return out;
}

std::string cell_line(const Cell& cell) {
  return fmt::format("{:>4}  {}  {:<20}{}", cell.index + 1, cell.hash, cell.label, axes_text(cell));
}

void shard_cells(Study& study, int64_t index, int64_t count) {
  if (count < 1 || index < 1 || index > count) {
    throw ConfigError(fmt::format("--shard {}/{}: expected i/n with 1 <= i <= n", index, count));
  }
  // By position in the cells selected so far, not by index in the full study: after --filter, the
  // shards still share the selected cells evenly and none is left empty while another has two.
  std::vector<Cell> kept;
  for (size_t position = 0; position < study.cells.size(); ++position) {
    if (static_cast<int64_t>(position) % count == index - 1) kept.push_back(std::move(study.cells[position]));
  }
  study.cells = std::move(kept);
}

void filter_cells(Study& study, const std::string& pattern) {
  // RE2 matches in time linear in the text and never recurses on the pattern, so no pattern can hang
  // the runner or overflow its stack; it refuses what it cannot do in bounded memory.
  RE2::Options options;
  options.set_log_errors(false);
  const RE2 re(pattern, options);
  if (!re.ok()) {
    throw ConfigError(fmt::format("--filter '{}': not a valid regular expression: {} (RE2 syntax, as "
                                  "https://github.com/google/re2/wiki/Syntax describes)", pattern, re.error()));
  }
  std::vector<Cell> kept;
  for (Cell& cell : study.cells) {
    if (RE2::PartialMatch(cell_line(cell), re)) kept.push_back(std::move(cell));
  }
  if (kept.empty()) throw ConfigError(fmt::format("--filter '{}' matches none of the {} cells", pattern, study.cells.size()));
  study.cells = std::move(kept);
}

}  // namespace attnbench
