#include "results/console.h"

#include "measure/mode.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>

namespace attnbench {
namespace {

std::string cell_text(const nlohmann::json& value, const std::string& format) {
  if (value.is_null()) return "-";
  if (format == "ms") return value.is_object() && value.contains("median") ? ms_text(value) : "-";
  if (format == "rel") return value.is_object() && value.contains("rel_rms") ? fmt::format("{:.2e}", value["rel_rms"].get<double>()) : "-";
  if (!value.is_number()) return "-";
  if (format == "rate") return fmt::format("{:.0f}", value.get<double>());
  return fmt::format("{:.4g}", value.get<double>());
}

// A column whose path has a "*" (quality.*.score) stands for one column per key found there in any row,
// titled with that key (each quality task).
std::vector<SummaryColumn> expand(const SummaryColumn& column, const std::vector<nlohmann::json>& rows) {
  const size_t star = column.path.find('*');
  if (star == std::string::npos) return {column};
  const std::string parent = column.path.substr(0, star == 0 ? 0 : star - 1), rest = column.path.substr(star + 1);
  std::vector<SummaryColumn> out;
  for (const auto& r : rows) {
    if (!r.contains("metrics")) continue;
    const nlohmann::json& level = parent.empty() ? r["metrics"] : json_at(r["metrics"], parent);
    if (!level.is_object()) continue;
    for (const auto& item : level.items()) {
      const std::string path = (parent.empty() ? "" : parent + ".") + item.key() + rest;
      if (std::none_of(out.begin(), out.end(), [&](const SummaryColumn& c) { return c.path == path; })) {
        out.push_back({item.key(), path, column.format});
      }
    }
  }
  return out;
}

}  // namespace

void print_summary(const std::vector<nlohmann::json>& rows, std::ostream& out) {
  if (rows.empty()) return;
  // The columns of the modes that wrote something in at least one row.
  std::vector<SummaryColumn> columns;
  for (const Mode& mode : modes()) {
    for (const SummaryColumn& wanted : mode.summary) {
      for (const SummaryColumn& c : expand(wanted, rows)) {
        for (const auto& r : rows) {
          if (r.contains("metrics") && !json_at(r["metrics"], c.path).is_null()) {
            columns.push_back(c);
            break;
          }
        }
      }
    }
  }
  auto width = [](const SummaryColumn& c) { return std::max<size_t>(12, c.title.size()); };
  std::string header = fmt::format("\n{:<40} {:>12}", "cell", "status");  // "inconsistent" fits
  for (const SummaryColumn& c : columns) header += fmt::format(" {:>{}}", c.title, width(c));
  fmt::print(out, "{}\n", header);
  for (const auto& r : rows) {
    static const nlohmann::json no_metrics = nlohmann::json::object();
    const nlohmann::json& m = r.contains("metrics") ? r["metrics"] : no_metrics;
    std::string line = fmt::format("{:<40} {:>12}", r["label_text"].get<std::string>().substr(0, 40), r["status"].get<std::string>());
    for (const SummaryColumn& c : columns) line += fmt::format(" {:>{}}", cell_text(json_at(m, c.path), c.format), width(c));
    fmt::print(out, "{}\n", line);
  }
}

}  // namespace attnbench
