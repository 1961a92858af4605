// The table printed after a study: one row per cell, one column per summary value of the modes that
// ran (measure/mode.h), so a new mode's columns appear without touching this file.
#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <vector>

namespace attnbench {

// `rows`: the cells' result lines, each with a "label_text" for its first column.
void print_summary(const std::vector<nlohmann::json>& rows, std::ostream& out);

}  // namespace attnbench
